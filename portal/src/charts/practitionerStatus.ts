// Status words for the practitioner page: certification, drift and coaching tasks. Pure, tested with vitest.
import { metricLabel, ruleLabel } from "./controlChart";

export type Tone = "good" | "warn" | "bad";

export interface Status {
  label: string;
  tone: Tone;
}

const CERT: Record<string, Status> = {
  certified: { label: "Certified", tone: "good" },
  recertification_due: { label: "Recertification due", tone: "warn" },
  lapsed: { label: "Lapsed", tone: "bad" },
  revoked: { label: "Revoked", tone: "bad" },
  not_certified: { label: "Not certified", tone: "warn" },
};

export function certificationStatus(status: string): Status {
  return CERT[status] ?? { label: status.replace(/_/g, " "), tone: "warn" };
}

export interface DriftMetricIn {
  metric: string;
  flagged?: string | null;
  ewma?: number | null;
  observations: number;
}

export interface DriftIn {
  family: string;
  drifting: boolean;
  metrics: DriftMetricIn[];
}

export interface DriftStatus extends Status {
  /** The flagged metrics in words, e.g. "Total score: EWMA below the lower control limit". */
  details: string[];
}

/** Drift on one instrument family: no data, steady, or drifting with which metrics and why. */
export function driftStatus(drift: DriftIn[], family: string): DriftStatus {
  const d = drift.find((x) => x.family === family);
  if (!d || d.metrics.every((m) => m.observations === 0)) {
    return { label: "No drift data yet", tone: "warn", details: [] };
  }
  const details = d.metrics
    .filter((m) => m.flagged)
    .map((m) => `${metricLabel(m.metric)}: ${ruleLabel(m.flagged!)}`);
  if (d.drifting || details.length > 0) return { label: "Drifting", tone: "bad", details };
  return { label: "No drift", tone: "good", details: [] };
}

/** A timeline step's reason, as the service wrote it, with a readable fallback. */
export function stepText(step: { status: string; reason: string }): string {
  const label = certificationStatus(step.status).label;
  return step.reason ? `${label}: ${step.reason}` : label;
}

const TASK: Record<string, Status> = {
  open: { label: "Open", tone: "warn" },
  done: { label: "Done", tone: "good" },
  completed: { label: "Done", tone: "good" },
  cancelled: { label: "Cancelled", tone: "warn" },
};

export function taskStatus(status: string, dueOn: string, today: string): Status {
  const s = TASK[status] ?? { label: status.replace(/_/g, " "), tone: "warn" as Tone };
  if (s.label === "Open" && dueOn < today) return { label: "Overdue", tone: "bad" };
  return s;
}

const KIND: Record<string, string> = {
  observation_debrief: "Observation debrief",
  follow_up: "Follow-up",
};

export function taskKind(kind: string): string {
  return KIND[kind] ?? kind.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

/** A date `days` from `today` (both YYYY-MM-DD), in UTC so no time zone shifts it. */
export function addDays(today: string, days: number): string {
  const d = new Date(`${today}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/** An event type ("fidelity.ObservationRecorded.v1") in words: "Observation recorded". */
export function eventLabel(type: string): string {
  const parts = type.split(".");
  const name = parts.length >= 3 ? parts[parts.length - 2]! : parts[parts.length - 1]!;
  const words = name.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}
