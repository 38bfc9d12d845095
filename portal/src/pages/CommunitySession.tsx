// One community session: when (in its zone and the viewer's), seats and the waiting list, the person's
// registration (register, cancel, accept or decline an offered seat), the meeting link once confirmed, the
// materials and the cases. The hub also sees the registrations and the way to the roll call.
import { useCallback, useEffect, useMemo, useState } from "react";
import { Link, useParams } from "react-router";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { CommunitySessionQuery } from "../gql/graphql";
import { DataTable } from "../components/DataTable";
import { Empty, ErrorBox, Loading } from "../components/States";
import { toProblem } from "../lib/errors";
import { useLiveEvents } from "../lib/live";
import { useSession } from "../lib/session";
import { personLabel, registerAction, registrationView, seatState } from "../community/seats";
import { timeRange, until, viewerZone } from "../community/time";
import { caseStateLabel } from "../community/highlight";
import { Badge, LiveNote } from "../community/ui";
import { concernsSession } from "../community/events";

const SessionQuery = graphql(`
  query CommunitySession($id: ID!) {
    community {
      session(id: $id) {
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
        detached
        competencies
        registrationOpen
        isHub
        meetingUrl
        materials {
          title
          url
        }
        myRegistration {
          id
          status
          waitlistPosition
          offerExpiresAt
          cancelReason
        }
        cases {
          id
          title
          state
        }
      }
    }
  }
`);

const HubQuery = graphql(`
  query CommunitySessionHub($id: ID!) {
    community {
      session(id: $id) {
        id
        registrations {
          id
          personId
          personName
          agencyId
          status
          position
          waitlistPosition
          via
        }
        attendance {
          items {
            personId
            displayName
          }
        }
      }
    }
  }
`);

const Register = graphql(`
  mutation CommunityRegister($sessionId: ID!) {
    register(sessionId: $sessionId) {
      id
      status
      waitlistPosition
    }
  }
`);

const Cancel = graphql(`
  mutation CommunityCancelRegistration($id: ID!) {
    cancelRegistration(id: $id) {
      id
      status
    }
  }
`);

const Accept = graphql(`
  mutation CommunityAcceptOffer($id: ID!) {
    acceptOffer(id: $id) {
      id
      status
    }
  }
`);

const Decline = graphql(`
  mutation CommunityDeclineOffer($id: ID!) {
    declineOffer(id: $id) {
      id
      status
    }
  }
`);

type Session = NonNullable<CommunitySessionQuery["community"]["session"]>;

const LIVE_TYPES = ["RegistrationConfirmed", "WaitlistOffered", "RegistrationCancelled", "SessionScheduled",
  "SessionCancelled"];

export function CommunitySession() {
  const { id = "" } = useParams();
  const { claims } = useSession();
  const [result, reexecute] = useQuery({ query: SessionQuery, variables: { id } });
  const [liveAt, setLiveAt] = useState<Date | null>(null);
  const refresh = useCallback(() => reexecute({ requestPolicy: "network-only" }), [reexecute]);
  // Every agency's feed carries every session's schedule changes: only this session's cause a refetch.
  useLiveEvents(claims.agency, LIVE_TYPES, (e) => {
    if (!concernsSession(e, id)) return;
    refresh();
    setLiveAt(new Date());
  });
  const session = result.data?.community.session;

  if (result.fetching && !result.data) return <Page><Loading what="the session" /></Page>;
  if (result.error && !result.data) {
    const notFound = toProblem(result.error)?.code === "NOT_FOUND";
    return <Page>{notFound ? <Empty>This session does not exist or is not open to you.</Empty> : <ErrorBox error={result.error} />}</Page>;
  }
  if (!session) return <Page><Empty>This session does not exist or is not open to you.</Empty></Page>;
  return (
    <Page title={session.title}>
      <LiveNote at={liveAt} />
      <div className="grid two">
        <Details session={session} />
        <Registration session={session} onChanged={refresh} />
      </div>
      {session.isHub && <HubPanel session={session} liveAt={liveAt} />}
      <Cases session={session} />
    </Page>
  );
}

function Page({ title, children }: { title?: string; children: React.ReactNode }) {
  return (
    <section className="community" aria-labelledby="session-title">
      <p><Link to="/community">← All sessions</Link></p>
      <h1 id="session-title">{title ?? "Community session"}</h1>
      {children}
    </section>
  );
}

function Details({ session: s }: { session: Session }) {
  const zone = useMemo(() => viewerZone(), []);
  const own = timeRange(s.startsAt, s.endsAt, s.timezone);
  const mine = timeRange(s.startsAt, s.endsAt, zone);
  return (
    <section className="card" aria-labelledby="details-title">
      <h2 id="details-title">Details</h2>
      <dl className="details" data-testid="details">
        <dt>Program</dt>
        <dd>{s.programTitle}</dd>
        {s.topic && <><dt>Topic</dt><dd>{s.topic}</dd></>}
        <dt>When ({s.timezone})</dt>
        <dd data-testid="own-time">{own}</dd>
        {mine !== own && <><dt>Your time ({zone})</dt><dd data-testid="viewer-time">{mine}</dd></>}
        {s.competencies.length > 0 && <><dt>Competencies</dt><dd>{s.competencies.join(", ")}</dd></>}
        <dt>Status</dt>
        <dd>{s.status === "cancelled" ? <Badge tone="bad">Cancelled</Badge> : s.registrationOpen
          ? "Open for registration" : "Registration closed (the session has started)"}</dd>
      </dl>
      <h3>Materials</h3>
      {s.materials.length === 0 ? (
        <p className="muted">No materials yet.</p>
      ) : (
        <ul data-testid="materials">
          {s.materials.map((m) => <li key={m.url}><a href={m.url} rel="noopener noreferrer" target="_blank">{m.title}</a></li>)}
        </ul>
      )}
    </section>
  );
}

function Registration({ session: s, onChanged }: { session: Session; onChanged: () => void }) {
  const [registerState, register] = useMutation(Register);
  const [cancelState, cancel] = useMutation(Cancel);
  const [acceptState, accept] = useMutation(Accept);
  const [declineState, decline] = useMutation(Decline);
  const [done, setDone] = useState<string | null>(null);
  const reg = s.myRegistration;
  const view = registrationView(reg);
  const seats = seatState(s);
  const action = registerAction(s.registrationOpen, s, reg);
  const busy = registerState.fetching || cancelState.fetching || acceptState.fetching || declineState.fetching;
  const error = registerState.error ?? cancelState.error ?? acceptState.error ?? declineState.error;

  const run = async (p: Promise<{ error?: unknown }>, message: string) => {
    setDone(null);
    const r = await p;
    if (!r.error) {
      setDone(message);
      onChanged();
    }
  };

  return (
    <section className="card" aria-labelledby="registration-title">
      <h2 id="registration-title">Your place</h2>
      <p data-testid="seats"><Badge tone={seats.tone}>{seats.label}</Badge></p>
      {view && <p data-testid="my-registration"><Badge tone={view.tone}>{view.label}</Badge></p>}
      {reg?.status === "offered" && reg.offerExpiresAt && (
        <p data-testid="offer-expiry">The offer expires {until(reg.offerExpiresAt)}
          {" "}({new Date(reg.offerExpiresAt).toLocaleString()}); then the seat passes to the next person.</p>
      )}
      {s.meetingUrl ? (
        <p>
          <a className="meeting" href={s.meetingUrl} rel="noopener noreferrer" target="_blank" data-testid="meeting-link">
            Join the meeting
          </a>
          <span className="muted"> ({s.meetingUrl})</span>
        </p>
      ) : s.status !== "cancelled" ? (
        <p className="muted" data-testid="meeting-hidden">The meeting link appears here once your seat is confirmed.</p>
      ) : null}
      <div className="buttons">
        {action && (
          <button type="button" className="primary" disabled={busy}
            onClick={() => void run(register({ sessionId: s.id }), action === "register"
              ? "You are registered." : "You joined the waiting list.")}>
            {action === "register" ? "Register" : "Join the waiting list"}
          </button>
        )}
        {reg?.status === "offered" && (
          <>
            <button type="button" className="primary" disabled={busy}
              onClick={() => void run(accept({ id: reg.id }), "You accepted the seat.")}>Accept the seat</button>
            <button type="button" className="secondary" disabled={busy}
              onClick={() => void run(decline({ id: reg.id }), "You declined the seat.")}>Decline</button>
          </>
        )}
        {view?.active && reg?.status !== "offered" && s.registrationOpen && (
          <button type="button" className="secondary" disabled={busy}
            onClick={() => void run(cancel({ id: reg!.id }), "Your registration is cancelled.")}>
            {reg?.status === "waiting" ? "Leave the waiting list" : "Cancel my registration"}
          </button>
        )}
      </div>
      <p role="status" className="hint">{done}</p>
      <ErrorBox error={error} />
    </section>
  );
}

function HubPanel({ session: s, liveAt }: { session: Session; liveAt: Date | null }) {
  const [result, reexecute] = useQuery({ query: HubQuery, variables: { id: s.id } });
  // The parent's live note says something changed: the registrations follow.
  useEffect(() => { if (liveAt) reexecute({ requestPolicy: "network-only" }); }, [liveAt, reexecute]);
  const regs = result.data?.community.session?.registrations ?? [];
  const names = new Map((result.data?.community.session?.attendance.items ?? []).map((a) => [a.personId, a.displayName]));
  const active = regs.filter((r) => r.status !== "cancelled");
  return (
    <section className="card" aria-labelledby="hub-title" data-testid="hub">
      <h2 id="hub-title">Hub: registrations</h2>
      <dl className="figures">
        <div><dt>Capacity</dt><dd>{s.capacity}</dd></div>
        <div><dt>Seats taken</dt><dd>{s.seatsTaken}</dd></div>
        <div><dt>Waiting</dt><dd>{s.waiting}</dd></div>
      </dl>
      <p><Link to={`/community/sessions/${s.id}/roll-call`} className="meeting">Open the roll call</Link></p>
      {result.fetching && !result.data ? (
        <Loading what="the registrations" />
      ) : result.error && !result.data ? (
        <ErrorBox error={result.error} />
      ) : active.length === 0 ? (
        <Empty>No one has registered yet.</Empty>
      ) : (
        <DataTable caption="Registrations, in order" rows={active} rowKey={(r) => r.id} columns={[
          { header: "Person", cell: (r) => personLabel(r, names) },
          { header: "Status", cell: (r) => r.status === "waiting" ? `waiting (${r.waitlistPosition ?? "?"})` : r.status },
          { header: "Via", cell: (r) => r.via },
        ]} />
      )}
    </section>
  );
}

function Cases({ session: s }: { session: Session }) {
  return (
    <section className="card" aria-labelledby="cases-title">
      <h2 id="cases-title">Case consultation</h2>
      <p>Bring a stuck situation to the group. Your draft is screened for identifying details before anyone else
        sees it.</p>
      {s.status !== "cancelled" && (
        <p><Link className="meeting" to={`/community/cases/new?session=${s.id}`}>Present a case at this session</Link></p>
      )}
      {s.cases.length === 0 ? (
        <p className="muted">No cases you can see yet.</p>
      ) : (
        <ul data-testid="cases">
          {s.cases.map((c) => (
            <li key={c.id}><Link to={`/community/cases/${c.id}`}>{c.title}</Link> — {caseStateLabel(c.state)}</li>
          ))}
        </ul>
      )}
    </section>
  );
}

