"""Errors storage raises for bad input. Each says what is wrong in words an operator can act on."""

from __future__ import annotations


class StorageError(Exception):
    """Base class for storage errors caused by input rather than by the database."""


class UnknownCommunityError(StorageError):
    """An event names a community that was never registered with the writer."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"community {name!r} is not registered: the app registers [community] name at start-up, "
            "importers take --community"
        )
        self.name = name


class UnknownCourseError(StorageError):
    """A purchase names a course that is not in the catalog."""

    def __init__(self, community: str, course_key: str) -> None:
        super().__init__(f"course {course_key!r} is not in the catalog of community {community!r}")
        self.course_key = course_key


class UnknownPurchaseError(StorageError):
    """A refund names a charge that was never recorded."""

    def __init__(self, platform: str, charge_id: str) -> None:
        super().__init__(f"no purchase with charge id {charge_id!r} on {platform} to refund")
        self.charge_id = charge_id


class UnknownMemberError(StorageError):
    """A member lookup found nobody."""

    def __init__(self, community: str, platform: str, user_id: str) -> None:
        super().__init__(f"no member {user_id!r} on {platform} in community {community!r}")
