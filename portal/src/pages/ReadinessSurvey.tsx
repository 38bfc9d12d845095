// The readiness survey: staff answer their agency's open round(s), grouped by domain, on the instrument's
// scale. Answers are private; only per-domain results over the privacy floor are ever shown, on the overview.
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { ReadinessSurveyQuery } from "../gql/graphql";
import { Empty, ErrorBox, Loading } from "../components/States";
import { toProblem, type Problem } from "../lib/errors";
import { useLiveEvents } from "../lib/live";
import { can, useSession } from "../lib/session";
import {
  answersToSend, changed, completeness, groupByDomain, openRounds, parseAnswers, placeAnswerErrors, privacyFloor,
  scaleAnchors, type Answers,
} from "../charts/survey";
import { liveCount, recordCount, respondentsOf, type LiveCounts } from "../charts/surveyLive";

const SurveyQuery = graphql(`
  query ReadinessSurvey($agencyId: ID!) {
    agency(id: $agencyId) {
      id
      name
      readinessRounds {
        id
        title
        status
        openedAt
        closedAt
        respondents
        policy {
          minRespondents
        }
        instrument {
          id
          name
          version
          scaleMin
          scaleMax
          domains {
            key
            label
            description
          }
          items {
            key
            domain
            text
          }
        }
        myAnswers {
          roundId
          answers
          submittedAt
          updatedAt
        }
      }
    }
  }
`);

const SubmitMutation = graphql(`
  mutation SubmitReadinessResponse($agencyId: ID!, $roundId: ID!, $answers: JSON!, $idempotencyKey: String) {
    submitReadinessResponse(agencyId: $agencyId, roundId: $roundId, answers: $answers, idempotencyKey: $idempotencyKey) {
      roundId
      answers
      submittedAt
      updatedAt
    }
  }
`);

type Round = NonNullable<ReadinessSurveyQuery["agency"]>["readinessRounds"][number];

// A round opening or closing changes what the page shows, so it asks again; a response only moves a count,
// which its event carries (never who answered), so that needs no request.
const LIVE_TYPES = ["ReadinessRoundOpened", "ReadinessResponseRecorded", "ReadinessAssessed"];

export function ReadinessSurvey() {
  const { claims } = useSession();
  const agencyId = claims.agency;
  const allowed = can.answerSurvey(claims.roles);
  const [result, reexecute] = useQuery({ query: SurveyQuery, variables: { agencyId }, pause: !allowed });
  const refetch = useCallback(() => reexecute({ requestPolicy: "network-only" }), [reexecute]);
  const rounds = result.data?.agency?.readinessRounds;
  const [liveCounts, setLiveCounts] = useState<LiveCounts>({});
  const live = useLiveEvents(allowed ? agencyId : null, LIVE_TYPES, (e) => {
    const count = liveCount(e.type, e.data);
    if (count && rounds?.some((r) => r.id === count.roundId)) setLiveCounts((c) => recordCount(c, count));
    else refetch(); // a round opened or closed, or a count for a round this page has not loaded yet
  });

  // The live feed does not replay what it missed (a laptop asleep, a dropped socket): look again on return.
  useEffect(() => {
    if (!allowed) return;
    const onVisible = () => {
      if (document.visibilityState === "visible") refetch();
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, [allowed, refetch]);

  const open = useMemo(() => openRounds(rounds ?? []), [rounds]);

  // A round this page showed open that is now closed: say so, rather than let the form just vanish.
  const seenOpen = useRef(new Map<string, string>());
  const [closedNote, setClosedNote] = useState<string | null>(null);
  useEffect(() => {
    if (!rounds) return;
    for (const r of rounds) {
      if (r.status === "open") seenOpen.current.set(r.id, r.title);
      else if (seenOpen.current.has(r.id)) {
        setClosedNote(`\u201c${r.title}\u201d has just closed. Thank you to everyone who answered.`);
        seenOpen.current.delete(r.id);
      }
    }
  }, [rounds]);

  if (!allowed) {
    return (
      <section>
        <h1>Readiness survey</h1>
        <Empty>The readiness survey is answered by an agency&apos;s own staff; your roles do not take part.</Empty>
      </section>
    );
  }

  const notFound = toProblem(result.error)?.code === "NOT_FOUND";
  const lastClosed = (rounds ?? []).filter((r) => r.status === "closed").at(-1);
  return (
    <section aria-labelledby="survey-title">
      <h1 id="survey-title">Readiness survey</h1>
      <p className="live" aria-live="polite">
        {live ? `Live: updated at ${new Date(live.time).toLocaleTimeString()}` : ""}
      </p>
      {closedNote && <p className="state ok" role="status">{closedNote}</p>}
      {result.fetching && !result.data && <Loading what="the readiness survey" />}
      {result.error && !notFound && !result.data && <ErrorBox error={result.error} />}
      {(result.data || notFound) && open.length === 0 && (
        <div className="card" data-testid="no-open-round">
          <h2>No survey to answer right now</h2>
          <Empty>
            Your agency has no open readiness round. When an agency admin opens one, its statements appear
            here: this page updates by itself.
            {lastClosed && (
              <> The last round, &ldquo;{lastClosed.title}&rdquo;, closed
                {lastClosed.closedAt ? ` on ${formatDate(lastClosed.closedAt)}` : ""}.</>
            )}
          </Empty>
          {can.seeAgency(claims.roles) && result.data?.agency && (
            <p><Link to={`/agency/${agencyId}`}>See the results on the agency overview</Link></p>
          )}
        </div>
      )}
      {open.map((r) => (
        <RoundForm key={r.id} round={r} respondents={respondentsOf(r, liveCounts)} agencyId={agencyId} />
      ))}
    </section>
  );
}

function RoundForm({ round, respondents, agencyId }: { round: Round; respondents: number; agencyId: string }) {
  const instrument = round.instrument;
  const saved = useMemo(() => parseAnswers(round.myAnswers?.answers), [round.myAnswers]);
  const [answers, setAnswers] = useState<Answers>(saved);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [confirmation, setConfirmation] = useState<string | null>(null);
  const [submitState, submit] = useMutation(SubmitMutation);
  // One key per set of answers: a retried save of the same answers is the same request.
  const keyRef = useRef<string>(newKey());
  const dirtyRef = useRef(false);

  // The server's answers win while nothing is being edited here (e.g. answered in another tab).
  useEffect(() => {
    if (!dirtyRef.current) setAnswers(saved);
  }, [saved]);

  const groups = useMemo(() => (instrument ? groupByDomain(instrument) : []), [instrument]);
  const anchors = useMemo(() => (instrument ? scaleAnchors(instrument.scaleMin, instrument.scaleMax) : []),
    [instrument]);
  if (!instrument) {
    return <ErrorBox>The statements of &ldquo;{round.title}&rdquo; cannot be loaded right now. Try again later.</ErrorBox>;
  }
  const done = completeness(instrument, answers);
  const placed = placeAnswerErrors(problem?.fields ?? [], instrument.items.map((i) => i.key));
  const hasSaved = round.myAnswers != null;
  const dirty = changed(saved, answers);
  const titleId = `round-${round.id}`;

  const choose = (key: string, value: number) => {
    dirtyRef.current = true;
    keyRef.current = newKey();
    setConfirmation(null);
    setAnswers((a) => ({ ...a, [key]: value }));
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(null);
    setConfirmation(null);
    const toSend = answersToSend(instrument, answers);
    if (Object.keys(toSend).length === 0) {
      setProblem({ message: "Answer at least one statement before saving.", fields: [] });
      return;
    }
    const r = await submit({ agencyId, roundId: round.id, answers: toSend, idempotencyKey: keyRef.current });
    if (r.error) {
      setProblem(toProblem(r.error));
      return;
    }
    dirtyRef.current = false;
    const n = Object.keys(toSend).length;
    setConfirmation(`Thank you \u2014 your answers are saved (${n} of ${done.total} statements). ` +
      "You can change them until the round closes.");
  };

  return (
    <form aria-labelledby={titleId} onSubmit={onSubmit} noValidate style={styles.form}>
      <div className="card">
        <h2 id={titleId}>{round.title}</h2>
        <dl className="figures">
          <div><dt>Opened</dt><dd>{formatDate(round.openedAt)}</dd></div>
          <div><dt>People who answered</dt><dd data-testid="respondents">{respondents}</dd></div>
          <div><dt>Your answers</dt><dd>{hasSaved ? "Saved" : "Not yet given"}</dd></div>
        </dl>
        {hasSaved && round.myAnswers && (
          <p className="hint">You last saved your answers on {formatDateTime(round.myAnswers.updatedAt)}; they are
            filled in below.</p>
        )}
      </div>

      <section className="card" aria-labelledby={`${titleId}-privacy`}>
        <h3 id={`${titleId}-privacy`}>Your answers are never shown individually</h3>
        <p>Trellis never shows anyone how you answered, your agency&apos;s leaders included: it only combines
          everyone&apos;s answers per readiness domain. {privacyFloor(round.policy.minRespondents)}</p>
        <p className="hint">You may leave a statement unanswered if you do not know.</p>
      </section>

      {groups.map((g) => (
        <section key={g.domain.key} className="card" aria-labelledby={`${titleId}-${g.domain.key}`}>
          <h3 id={`${titleId}-${g.domain.key}`}>{g.domain.label}</h3>
          {g.domain.description && <p className="hint">{g.domain.description}</p>}
          {g.items.map((item) => {
            const error = placed.byItem[item.key];
            const errId = `${titleId}-${item.key}-error`;
            return (
              <fieldset key={item.key} data-item={item.key} aria-describedby={error ? errId : undefined}>
                <legend>{item.text}</legend>
                <div style={styles.options}>
                  {anchors.map((a) => {
                    const id = `${titleId}-${item.key}-${a.value}`;
                    return (
                      <div key={a.value} style={styles.option}>
                        <input type="radio" id={id} name={`${titleId}-${item.key}`} value={a.value}
                          style={styles.radio} aria-invalid={error ? true : undefined}
                          checked={answers[item.key] === a.value} onChange={() => choose(item.key, a.value)} />
                        <label htmlFor={id} style={styles.label}>
                          <strong>{a.value}</strong>{a.label ? ` ${a.label}` : ""}
                        </label>
                      </div>
                    );
                  })}
                </div>
                {error && <p id={errId} className="field-error" role="alert">{error}</p>}
              </fieldset>
            );
          })}
        </section>
      ))}

      <div className="card">
        <p aria-live="polite" data-testid="completeness">
          {done.answered} of {done.total} statements answered{done.complete ? " \u2014 all done." : "."}
        </p>
        {problem && (
          <div className="state error" role="alert">
            <p>{problem.message}</p>
            {placed.general.length > 0 && <ul>{placed.general.map((m) => <li key={m}>{m}</li>)}</ul>}
          </div>
        )}
        {confirmation && <p className="state ok" role="status">{confirmation}</p>}
        <button type="submit" className="primary" disabled={submitState.fetching || (hasSaved && !dirty)}>
          {submitState.fetching ? "Saving\u2026" : hasSaved ? "Update my answers" : "Save my answers"}
        </button>
      </div>
    </form>
  );
}

// Layout for the answer scale: five options in a row where there is room, stacked on a phone.
const styles = {
  form: { display: "grid", gap: "1rem", marginBottom: "1rem" },
  options: { display: "grid", gridTemplateColumns: "repeat(auto-fit, minmax(9.5rem, 1fr))", gap: "0.25rem 0.75rem" },
  option: { display: "flex", alignItems: "center", gap: "0.5rem", minHeight: 44 },
  radio: { width: "1.25rem", height: "1.25rem", minHeight: 0, margin: 0, flex: "none" },
  label: { fontWeight: 400, margin: 0, cursor: "pointer", padding: "0.5rem 0" },
} as const;

function newKey(): string {
  return typeof crypto !== "undefined" && "randomUUID" in crypto
    ? crypto.randomUUID()
    : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function formatDate(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleDateString(undefined, { dateStyle: "medium" });
}

function formatDateTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
