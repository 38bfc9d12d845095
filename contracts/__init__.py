"""The public event catalog. Imports nothing but pydantic and the kernel's envelope."""

from contracts import coaching, community, fidelity, learning, readiness
from trellis.envelope import EventPayload

DOMAINS = ("readiness", "learning", "coaching", "fidelity", "community")


def catalog() -> list[type[EventPayload]]:
    """Every published event payload model, for docs and for partners."""
    return [
        readiness.AgencyRegistered, readiness.StaffMemberJoined, readiness.StaffMemberLeft,
        readiness.StaffRoleChanged, readiness.ReadinessRoundOpened, readiness.ReadinessResponseRecorded,
        readiness.ReadinessAssessed, readiness.ImplementationPlanApproved,
        readiness.PlanActionAdded, readiness.PlanActionUpdated, readiness.PlanActionCompleted,
        readiness.ImplementationStageChanged,
        learning.CourseCompleted,
        fidelity.ObservationRecorded, fidelity.ObservationAmended, fidelity.PractitionerCertified,
        fidelity.RecertificationDue, fidelity.CertificationRenewed, fidelity.CertificationLapsed,
        fidelity.CertificationRevoked, fidelity.FidelityDriftDetected, fidelity.FidelityDriftCleared,
        coaching.CoachingTaskOpened,
        community.SessionScheduled, community.SessionCancelled, community.RegistrationConfirmed,
        community.WaitlistOffered, community.RegistrationCancelled, community.SessionReminderDue,
        community.AttendanceRecorded, community.ContinuingEducationEarned, community.CaseRecommendationsIssued,
        community.CaseFollowUpReported,
    ]
