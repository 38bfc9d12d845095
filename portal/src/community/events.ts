// Which live events concern a page. Platform-wide ones (a session scheduled, changed or cancelled) reach every
// agency's feed with their data withheld: their subject is the session's id. The viewer's agency's registration
// events carry their data, whose session_id names the session.
export interface EventLike {
  type: string;
  subject: string;
  data: unknown;
}

/** True when the event is about session `sessionId`. */
export function concernsSession(e: EventLike, sessionId: string): boolean {
  if (e.type.includes("SessionScheduled") || e.type.includes("SessionCancelled")) return e.subject === sessionId;
  const data = e.data as { session_id?: unknown } | null | undefined;
  return typeof data === "object" && data !== null && data.session_id === sessionId;
}
