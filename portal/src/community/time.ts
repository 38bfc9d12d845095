// Sessions in time: each session keeps its own IANA zone (the program's), and the viewer has theirs.
// Weeks are grouped in the viewer's zone (Monday first), and a time is shown in both zones when they differ.

export interface Timed {
  id: string;
  startsAt: string; // UTC ISO
  endsAt: string;
  timezone: string; // the session's own zone, e.g. "America/Chicago"
}

export interface Week<T extends Timed> {
  /** The Monday of the week in the viewer's zone, YYYY-MM-DD: a stable key. */
  key: string;
  /** "Week of Mon, Jan 4, 2027" */
  label: string;
  sessions: T[];
}

export function viewerZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** The calendar date (YYYY-MM-DD) of an instant in a zone. */
export function localDay(iso: string, zone: string): string {
  // en-CA writes dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date(iso));
}

function addDays(day: string, days: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/** The Monday (YYYY-MM-DD) of the week an instant falls in, in a zone. */
export function weekStart(iso: string, zone: string): string {
  const day = localDay(iso, zone);
  const weekday = new Date(`${day}T00:00:00Z`).getUTCDay(); // 0 = Sunday
  return addDays(day, -((weekday + 6) % 7));
}

export function weekLabel(monday: string, locale = "en-US"): string {
  const text = new Intl.DateTimeFormat(locale, { timeZone: "UTC", weekday: "short", month: "short", day: "numeric",
    year: "numeric" }).format(new Date(`${monday}T00:00:00Z`));
  return `Week of ${text}`;
}

/** Sessions by week in the viewer's zone, weeks and sessions in time order. */
export function groupByWeek<T extends Timed>(sessions: readonly T[], zone: string, locale = "en-US"): Week<T>[] {
  const sorted = [...sessions].sort((a, b) => Date.parse(a.startsAt) - Date.parse(b.startsAt) || a.id.localeCompare(b.id));
  const weeks = new Map<string, T[]>();
  for (const s of sorted) {
    const key = weekStart(s.startsAt, zone);
    const list = weeks.get(key);
    if (list) list.push(s);
    else weeks.set(key, [s]);
  }
  return [...weeks.entries()].map(([key, list]) => ({ key, label: weekLabel(key, locale), sessions: list }));
}

/** "Tue, Jan 5, 10:00 AM – 11:30 AM CST": the day once, the end's day only when it differs. */
export function timeRange(startsAt: string, endsAt: string, zone: string, locale = "en-US"): string {
  const day = new Intl.DateTimeFormat(locale, { timeZone: zone, weekday: "short", month: "short", day: "numeric" });
  const time = new Intl.DateTimeFormat(locale, { timeZone: zone, hour: "numeric", minute: "2-digit" });
  const withZone = new Intl.DateTimeFormat(locale, { timeZone: zone, hour: "numeric", minute: "2-digit",
    timeZoneName: "short" });
  const start = new Date(startsAt);
  const end = new Date(endsAt);
  const sameDay = localDay(startsAt, zone) === localDay(endsAt, zone);
  const endText = sameDay ? withZone.format(end) : `${day.format(end)}, ${withZone.format(end)}`;
  return `${day.format(start)}, ${time.format(start)} – ${endText}`;
}

export interface SessionTimes {
  /** In the session's own zone, named. */
  own: string;
  /** In the viewer's zone; null when it is the same wall time as the session's own. */
  viewer: string | null;
  ownZone: string;
  viewerZone: string;
}

/** The session's time in its own zone and, when different, in the viewer's. */
export function sessionTimes(s: Timed, zone: string, locale = "en-US"): SessionTimes {
  const own = timeRange(s.startsAt, s.endsAt, s.timezone, locale);
  const viewer = timeRange(s.startsAt, s.endsAt, zone, locale);
  return { own, viewer: viewer === own ? null : viewer, ownZone: s.timezone, viewerZone: zone };
}

/** "in 3 hours", "in 2 days", "ended": how long until an instant, for offers and starts. */
export function until(iso: string, now: Date = new Date()): string {
  const ms = Date.parse(iso) - now.getTime();
  if (ms <= 0) return "now";
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `in ${minutes} minute${minutes === 1 ? "" : "s"}`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `in ${hours} hour${hours === 1 ? "" : "s"}`;
  const days = Math.round(hours / 24);
  return `in ${days} days`;
}
