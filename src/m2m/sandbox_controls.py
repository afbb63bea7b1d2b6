"""What the sandbox's control API (``/sandbox/…``) works on: the clock the whole process
follows, the network faults the worker meets, the log of what was sent, and the reset that
puts all of it and the database back to the documented demo state.

Built by ``build_services`` only when ``settings.sandbox``; outside the sandbox the services hold
none of it, the clock is the real one and no route reaches any of this. Everything but the
database lives in the process's memory: ``m2m serve --sandbox`` (one process, its worker inside)
shares it between the control API and the worker; with ``--processes N`` each process has its
own, and a standalone ``m2m worker`` sees none of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from m2m import sandbox
from m2m.callbacks.sent import SentLog
from m2m.clock import SandboxClock
from m2m.network_faults import FaultStore
from m2m.rate_limits import AccountBuckets
from m2m.scenario import Scenario
from m2m.scenario import apply as apply_scenario
from m2m.storage.engine import write_transaction


@dataclass(slots=True)
class SandboxControls:
    engine: Engine
    clock: SandboxClock
    rate_limits: AccountBuckets
    faults: FaultStore = field(default_factory=FaultStore)
    sent: SentLog = field(default_factory=SentLog)

    def reset(self, scenario: Scenario | None = None) -> None:
        """Back to the documented demo state: real time, no faults, nothing sent, the demo
        account, credentials and SIMs as a fresh sandbox has them (and nothing else); then
        ``scenario`` (``scenario.checked``) over it, when given."""
        self.clock.realtime()
        self.faults.clear()
        self.sent.clear()
        with write_transaction(self.engine) as conn:
            sandbox.reset(conn, self.clock.now())
            if scenario is not None:
                apply_scenario(conn, scenario, self.clock.now())
        self.rate_limits.clear()
        for fault in scenario.faults if scenario else ():
            self.faults.add(fault.fault())
