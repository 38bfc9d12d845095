// The programme calendar: upcoming community sessions by week (in the viewer's zone, each with its own zone),
// a competency and program filter, the programs open to the person, and their personal calendar feed.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { CommunityCalendarQuery } from "../gql/graphql";
import { Empty, ErrorBox, Loading } from "../components/States";
import { useLiveEvents } from "../lib/live";
import { useSession } from "../lib/session";
import { groupByWeek, viewerZone } from "../community/time";
import { registrationView, seatState } from "../community/seats";
import { Badge, LiveNote, Times } from "../community/ui";

const CalendarQuery = graphql(`
  query CommunityCalendar($from: DateTime, $to: DateTime, $competency: String, $programId: ID) {
    community {
      competencies
      programs {
        id
        title
        description
        timezone
        sessionCount
        nextSessionAt
        competencies
      }
      sessions(from: $from, to: $to, competency: $competency, programId: $programId, first: 100) {
        id
        programId
        programTitle
        title
        topic
        startsAt
        endsAt
        timezone
        capacity
        seatsTaken
        waiting
        status
        competencies
        registrationOpen
        isHub
        myRegistration {
          id
          status
          waitlistPosition
          offerExpiresAt
        }
      }
    }
  }
`);

const FeedQuery = graphql(`
  query CommunityCalendarFeed {
    me {
      id
      calendarUrl
    }
  }
`);

const RotateFeed = graphql(`
  mutation CommunityRotateCalendarUrl {
    rotateCalendarUrl {
      url
    }
  }
`);

type Session = CommunityCalendarQuery["community"]["sessions"][number];

// The events that change seats or a person's registration (the agency's own feed).
const LIVE_TYPES = ["RegistrationConfirmed", "WaitlistOffered", "RegistrationCancelled", "SessionScheduled",
  "SessionCancelled", "AttendanceRecorded"];
const WEEKS_AHEAD = 12;
const LIVE_SETTLE_MS = 300;

export function CommunityCalendar() {
  const { claims } = useSession();
  const zone = useMemo(() => viewerZone(), []);
  const [competency, setCompetency] = useState("");
  const [programId, setProgramId] = useState("");
  // From the start of today, so today's sessions stay listed until the day ends.
  const range = useMemo(() => {
    const from = new Date();
    from.setHours(0, 0, 0, 0);
    const to = new Date(from.getTime() + WEEKS_AHEAD * 7 * 86_400_000);
    return { from: from.toISOString(), to: to.toISOString() };
  }, []);
  const [result, reexecute] = useQuery({
    query: CalendarQuery,
    variables: { ...range, competency: competency || null, programId: programId || null },
  });
  const [liveAt, setLiveAt] = useState<Date | null>(null);
  // A new program schedules its sessions in a burst (one SessionScheduled each, on every agency's feed): one
  // refetch once the burst has passed, not one per event.
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  const refetch = useCallback(() => {
    if (pending.current) clearTimeout(pending.current);
    pending.current = setTimeout(() => {
      pending.current = null;
      reexecute({ requestPolicy: "network-only" });
      setLiveAt(new Date());
    }, LIVE_SETTLE_MS);
  }, [reexecute]);
  useEffect(() => () => { if (pending.current) clearTimeout(pending.current); }, []);
  useLiveEvents(claims.agency, LIVE_TYPES, refetch);

  const community = result.data?.community;
  const weeks = useMemo(() => groupByWeek(community?.sessions ?? [], zone), [community?.sessions, zone]);

  return (
    <section className="community" aria-labelledby="community-title">
      <h1 id="community-title">Community</h1>
      <p className="hint">Cross-agency learning sessions and case consultation. Times are shown in each
        session&apos;s own time zone and in yours ({zone}).</p>
      <LiveNote at={liveAt} />

      <section className="card" aria-labelledby="sessions-title">
        <h2 id="sessions-title">Upcoming sessions</h2>
        <div className="toolbar">
          <div className="field">
            <label htmlFor="filter-competency">Competency</label>
            <select id="filter-competency" value={competency} onChange={(e) => setCompetency(e.target.value)}>
              <option value="">All competencies</option>
              {(community?.competencies ?? []).map((c) => <option key={c} value={c}>{c}</option>)}
            </select>
          </div>
          <div className="field">
            <label htmlFor="filter-program">Program</label>
            <select id="filter-program" value={programId} onChange={(e) => setProgramId(e.target.value)}>
              <option value="">All programs</option>
              {(community?.programs ?? []).map((p) => <option key={p.id} value={p.id}>{p.title}</option>)}
            </select>
          </div>
        </div>
        {result.fetching && !result.data ? (
          <Loading what="the sessions" />
        ) : result.error && !result.data ? (
          <ErrorBox error={result.error} />
        ) : weeks.length === 0 ? (
          <Empty>No sessions in the next {WEEKS_AHEAD} weeks{competency || programId ? " match these filters" : ""}.</Empty>
        ) : (
          <div data-testid="weeks">
            {weeks.map((w) => (
              <div className="week" key={w.key}>
                <h3>{w.label}</h3>
                <ul className="sessions">
                  {w.sessions.map((s) => <SessionItem key={s.id} session={s} zone={zone} />)}
                </ul>
              </div>
            ))}
          </div>
        )}
      </section>

      <div className="grid two">
        <section className="card" aria-labelledby="programs-title">
          <h2 id="programs-title">Programs</h2>
          {result.fetching && !result.data ? (
            <Loading what="the programs" />
          ) : result.error && !result.data ? (
            <ErrorBox error={result.error} />
          ) : (community?.programs ?? []).length === 0 ? (
            <Empty>No program is open to your agency yet.</Empty>
          ) : (
            <ul className="plain" data-testid="programs">
              {community!.programs.map((p) => (
                <li key={p.id} className="program">
                  <h3>{p.title}</h3>
                  {p.description && <p>{p.description}</p>}
                  <p className="muted">
                    {p.sessionCount} session{p.sessionCount === 1 ? "" : "s"} · {p.timezone}
                    {p.nextSessionAt && <> · next on {new Date(p.nextSessionAt).toLocaleDateString()}</>}
                  </p>
                  <button type="button" className="secondary" onClick={() => setProgramId(p.id)}>
                    Show its sessions<span className="visually-hidden"> ({p.title})</span>
                  </button>
                </li>
              ))}
            </ul>
          )}
        </section>
        <CalendarFeed />
      </div>
    </section>
  );
}

function SessionItem({ session: s, zone }: { session: Session; zone: string }) {
  const seats = seatState(s);
  const mine = registrationView(s.myRegistration);
  return (
    <li data-testid="session" data-session-id={s.id}>
      <Link className="title" to={`/community/sessions/${s.id}`}>{s.title}</Link>
      <div className="meta">
        <Times session={s} zone={zone} />
      </div>
      <div className="meta">
        <span className="muted">{s.programTitle}{s.topic ? ` · ${s.topic}` : ""}</span>
        {s.status === "cancelled" ? <Badge tone="bad">Cancelled</Badge> : <Badge tone={seats.tone}>{seats.label}</Badge>}
        {mine && <Badge tone={mine.tone} testId="my-registration">{mine.label}</Badge>}
        {s.isHub && <Badge tone="good">You are on the hub</Badge>}
      </div>
    </li>
  );
}

function CalendarFeed() {
  const [feed, reexecute] = useQuery({ query: FeedQuery });
  const [rotation, rotate] = useMutation(RotateFeed);
  const [copied, setCopied] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const url = rotation.data?.rotateCalendarUrl.url ?? feed.data?.me.calendarUrl ?? null;

  const copy = async () => {
    if (!url) return;
    try {
      await navigator.clipboard.writeText(url);
      setCopied("Copied the address.");
    } catch {
      // No clipboard permission (e.g. an http page): select the text so it can be copied by hand.
      (document.getElementById("feed-url") as HTMLInputElement | null)?.select();
      setCopied("Select the address and copy it.");
    }
  };
  const onRotate = async () => {
    setConfirming(false);
    const r = await rotate({});
    if (!r.error) {
      setCopied("A new address was made; the old one no longer works.");
      reexecute({ requestPolicy: "network-only" });
    }
  };

  return (
    <section className="card" aria-labelledby="feed-title">
      <h2 id="feed-title">Your calendar feed</h2>
      <p>Add this address to Outlook or Google Calendar (&ldquo;subscribe from URL&rdquo;) to see the sessions you
        are registered for. Anyone with the address can read it: make a new one if it was shared by mistake.</p>
      {feed.fetching && !feed.data ? (
        <Loading what="your calendar feed" />
      ) : feed.error && !feed.data ? (
        <ErrorBox error={feed.error} />
      ) : !url ? (
        <Empty>Your calendar feed is not available.</Empty>
      ) : (
        <>
          <div className="feed">
            <label htmlFor="feed-url" className="visually-hidden">Calendar feed address</label>
            <input id="feed-url" type="text" readOnly value={url} onFocus={(e) => e.currentTarget.select()} />
            <button type="button" className="secondary" onClick={() => void copy()}>Copy</button>
          </div>
          <div className="buttons">
            {confirming ? (
              <>
                <span>The old address stops working at once.</span>
                <button type="button" className="primary" onClick={() => void onRotate()} disabled={rotation.fetching}>
                  Make a new address
                </button>
                <button type="button" className="secondary" onClick={() => setConfirming(false)}>Keep this one</button>
              </>
            ) : (
              <button type="button" className="secondary" onClick={() => setConfirming(true)}>Make a new address…</button>
            )}
          </div>
          <p role="status" className="hint" data-testid="feed-status">{copied}</p>
          <ErrorBox error={rotation.error} />
        </>
      )}
    </section>
  );
}
