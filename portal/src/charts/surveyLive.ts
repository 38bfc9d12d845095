// Live readiness events for the survey page: what an event means for the rounds on screen.
// ReadinessResponseRecorded carries only the round and its new respondents count (never the person), so the
// page can show the count without asking the gateway again.

export interface LiveCount {
  roundId: string;
  respondents: number;
}

export type LiveCounts = Readonly<Record<string, number>>;

/** The count a ReadinessResponseRecorded event carries, or null for any other or malformed event. */
export function liveCount(type: string, data: unknown): LiveCount | null {
  if (!type.includes("ReadinessResponseRecorded") || typeof data !== "object" || data === null) return null;
  const { round_id: roundId, respondents } = data as Record<string, unknown>;
  if (typeof roundId !== "string" || typeof respondents !== "number" || !Number.isInteger(respondents)) return null;
  return { roundId, respondents };
}

/** Counts only grow while a round is open, so the larger of the live and fetched counts is the current one:
 *  a late or repeated event, or a refetch that raced an event, never moves the figure back. */
export function recordCount(counts: LiveCounts, c: LiveCount): LiveCounts {
  return (counts[c.roundId] ?? 0) >= c.respondents ? counts : { ...counts, [c.roundId]: c.respondents };
}

export function respondentsOf(round: { id: string; respondents: number }, counts: LiveCounts): number {
  return Math.max(round.respondents, counts[round.id] ?? 0);
}
