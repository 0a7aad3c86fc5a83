"""The simulated platform: connects the demo's :class:`~bot.demo.community.SimulatedCommunity` to the bot.

Everything flows through the real core: activity goes to the same :class:`~storage.writer.EventWriter` as the
platform adapters' (as ``Platform.SIMULATED`` events), sales and refunds through ``bot.core.sales``, and commands
(``/nudges off``, ``/stats``, ``/report``) through the dispatcher. A member who receives a nudge through
:meth:`SimulatedAdapter.send` comes back more often than one the scheduler held out, so the digest's nudge section
has an effect to measure.
"""

from __future__ import annotations

from datetime import datetime

from bot.config import CourseSettings
from bot.core.ports import AccessResult, AdapterDeps, DeliveryError
from bot.core.replies import OutgoingMessage, Reply
from bot.core.sales import record_refund, record_sale
from bot.demo.community import OWNER_ID, Action, Activity, Refund, Sale, SimulatedCommunity
from storage.events import CommandInvocation, MemberRef, Platform


class SimulatedAdapter:
    """Connects a :class:`SimulatedCommunity` to the bot: its actions go in, digests and nudges come out.

    It is also the simulated platform's :class:`~bot.core.ports.PlatformActions`: granting and revoking
    course access and refunding payments are recorded, not performed (there is no real platform).
    """

    name = "simulated"
    platform = Platform.SIMULATED

    def __init__(self, deps: AdapterDeps, community: SimulatedCommunity) -> None:
        """Create the adapter.

        Args:
            deps: The wired parts (writer, dispatcher, clock).
            community: The model whose actions this adapter delivers.
        """
        self.deps = deps
        self.community = community
        self.owner_inbox: list[OutgoingMessage] = []
        self.nudges: list[OutgoingMessage] = []
        self.other: list[OutgoingMessage] = []
        self.access_log: list[str] = []
        self.receipts = 0
        self._running = False

    async def start(self) -> None:
        """Nothing to connect to: the simulated community is in-process."""
        self._running = True

    async def stop(self) -> None:
        """Stop delivering (what was delivered is already with the writer, which the app flushes)."""
        self._running = False

    async def send(self, message: OutgoingMessage) -> None:
        """Receive what the bot sends: the owner's digest, or a nudge to a member (who may react to it).

        Raises:
            DeliveryError: The addressed member is not in the simulated community (any more).
        """
        if message.direct and message.target == OWNER_ID:
            self.owner_inbox.append(message)
            return
        if message.direct:
            if not self.community.on_nudge(message.target, self.deps.clock.now()):
                raise DeliveryError("the member is not in the simulated community", unreachable_user=True)
            self.nudges.append(message)
            return
        self.other.append(message)

    async def deliver(self, action: Action) -> None:
        """Hand one simulated action to the core, as a platform adapter would.

        Ledger writes and commands read and create member rows, so queued activity is flushed first: member
        ids (and with them the nudge holdout) then come out the same on every run.
        """
        if isinstance(action, Activity):
            await self.deps.writer.put(action.event)
        elif isinstance(action, Sale):
            await self.deps.writer.flush()
            outcome = await record_sale(self.deps.dispatcher, action.event, self)
            self.receipts += outcome.created
        elif isinstance(action, Refund):
            await self.deps.writer.flush()
            await record_refund(self.deps.dispatcher, action.event, action.member, self)
        else:
            await self.deps.writer.flush()
            await self.command(action.member, action.name, action.args, at=action.at)
        self.community.note_delivered(action)

    async def command(
        self,
        member: MemberRef,
        name: str,
        args: tuple[str, ...] = (),
        *,
        at: datetime | None = None,
        is_admin: bool = False,
    ) -> Reply:
        """Run a command as a member, in private, through the dispatcher, and return the bot's answer."""
        invocation = CommandInvocation(
            platform=Platform.SIMULATED,
            community=self.deps.settings.community.name,
            name=name,
            invoker=member,
            occurred_at=at or self.deps.clock.now(),
            args=args,
            is_private=True,
        )
        return await self.deps.dispatcher.dispatch(invocation, is_admin=is_admin, actions=self)

    # --- PlatformActions: nothing real to grant or refund -------------------------------------------------------

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Record that the buyer got the course (simulated)."""
        self.access_log.append(f"granted {course.id} to {member.user_id}")
        return AccessResult(ok=True, detail="access granted (simulated)")

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Record that the course was taken away after a refund (simulated)."""
        self.access_log.append(f"revoked {course.id} from {member.user_id}")
        return AccessResult(ok=True, detail="access removed (simulated)")

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        """Record that the money went back (simulated: no money moved in the first place)."""
        self.access_log.append(f"refunded {charge_id} to {member.user_id}")
