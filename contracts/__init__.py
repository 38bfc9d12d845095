"""The public event catalog. Imports nothing but pydantic and the kernel's envelope."""

from contracts import coaching, fidelity, readiness
from trellis.envelope import EventPayload

DOMAINS = ("readiness", "learning", "coaching", "fidelity", "community")


def catalog() -> list[type[EventPayload]]:
    """Every published event payload model, for docs and for partners."""
    return [
        readiness.AgencyRegistered, readiness.StaffMemberJoined, readiness.StaffMemberLeft,
        readiness.StaffRoleChanged, readiness.ReadinessAssessed, readiness.ImplementationPlanApproved,
        readiness.PlanActionCompleted, readiness.ImplementationStageChanged,
        fidelity.ObservationRecorded, fidelity.PractitionerCertified, fidelity.RecertificationDue,
        fidelity.CertificationRenewed, fidelity.CertificationLapsed, fidelity.CertificationRevoked,
        coaching.CoachingTaskOpened,
    ]
