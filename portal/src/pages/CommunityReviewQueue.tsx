// The hub's review queue: cases in review on the programs whose hub team the person is on, each with its
// texts and how its screening findings were settled; approve, or return with comments for the presenter.
import { useEffect, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { CommunityReviewQueueQuery } from "../gql/graphql";
import { Empty, ErrorBox, Loading } from "../components/States";
import { kindLabel } from "../community/highlight";
import { Badge } from "../community/ui";

const QueueQuery = graphql(`
  query CommunityReviewQueue {
    community {
      reviewQueue {
        id
        sessionId
        title
        state
        presenterAgency
        createdAt
        updatedAt
        fields {
          strengths
          needs
          tried
          question
        }
        findings {
          id
          field
          kind
          text
          status
          justification
        }
      }
    }
  }
`);

const Review = graphql(`
  mutation CommunityReviewCase($id: ID!, $decision: String!, $comments: String!) {
    reviewCase(id: $id, decision: $decision, comments: $comments) {
      id
      state
    }
  }
`);

type Case = CommunityReviewQueueQuery["community"]["reviewQueue"][number];

const LABELS: [keyof Case["fields"], string][] = [
  ["strengths", "The family's strengths"],
  ["needs", "The family's needs"],
  ["tried", "What has been tried"],
  ["question", "Your question for the group"],
];

export function CommunityReviewQueue() {
  const [result, reexecute] = useQuery({ query: QueueQuery });
  const [decided, setDecided] = useState<string | null>(null);
  const [at, setAt] = useState<Date | null>(null);
  // Submitting a case sends no event the portal can follow: look again every half minute.
  useEffect(() => {
    const t = window.setInterval(() => {
      reexecute({ requestPolicy: "network-only" });
      setAt(new Date());
    }, 30_000);
    return () => window.clearInterval(t);
  }, [reexecute]);
  const cases = result.data?.community.reviewQueue ?? [];
  return (
    <section className="community" aria-labelledby="review-title">
      <h1 id="review-title">Review queue</h1>
      <p className="hint">Cases submitted for your programs&apos; sessions. Approve a case to put it on the session&apos;s
        agenda (participants see it from the session&apos;s day), or return it to its presenter with comments.</p>
      <div className="buttons">
        <button type="button" className="secondary" onClick={() => { reexecute({ requestPolicy: "network-only" }); setAt(new Date()); }}>
          Check for new cases
        </button>
      </div>
      <p className="hint" aria-live="polite" data-testid="refreshed">
        {at ? `Checked at ${at.toLocaleTimeString()}; checked again every 30 seconds.` : "Checked again every 30 seconds."}
      </p>
      <p role="status" className="state ok" hidden={!decided} data-testid="decided">{decided}</p>
      {result.fetching && !result.data ? (
        <Loading what="the review queue" />
      ) : result.error && !result.data ? (
        <ErrorBox error={result.error} />
      ) : cases.length === 0 ? (
        <Empty>No case is waiting for review.</Empty>
      ) : (
        <ul className="plain" data-testid="queue">
          {cases.map((c) => (
            <li key={c.id}>
              <ReviewItem c={c} onDecided={(msg) => { setDecided(msg); reexecute({ requestPolicy: "network-only" }); }} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function ReviewItem({ c, onDecided }: { c: Case; onDecided: (message: string) => void }) {
  const [state, review] = useMutation(Review);
  const [comments, setComments] = useState("");
  const [missing, setMissing] = useState(false);
  const justified = c.findings.filter((f) => f.status === "justified");
  const shown = c.findings.filter((f) => f.status !== "fixed");
  const fixed = c.findings.length - shown.length;
  const commentsId = `comments-${c.id}`;

  const decide = async (decision: "approve" | "return") => {
    if (decision === "return" && !comments.trim()) {
      setMissing(true);
      document.getElementById(commentsId)?.focus();
      return;
    }
    setMissing(false);
    const r = await review({ id: c.id, decision, comments: comments.trim() });
    if (!r.error) onDecided(decision === "approve" ? `Approved “${c.title}”.` : `Returned “${c.title}” to its presenter.`);
  };
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    void decide("approve");
  };
  return (
    <article className="card" aria-labelledby={`case-${c.id}`} data-testid="review-case">
      <h2 id={`case-${c.id}`}>{c.title}</h2>
      <p className="muted">Submitted {new Date(c.updatedAt).toLocaleString()} ·{" "}
        <Link to={`/community/sessions/${c.sessionId}`}>the session</Link> · <Link to={`/community/cases/${c.id}`}>open the case</Link></p>
      <dl className="texts">
        {LABELS.map(([k, label]) => (
          <div key={k}>
            <dt>{label}</dt>
            <dd className="casetext">{c.fields[k] || <span className="muted">—</span>}</dd>
          </div>
        ))}
      </dl>
      <h3>Screening</h3>
      {shown.length === 0 && fixed === 0 ? (
        <p>Nothing identifying was found.</p>
      ) : (
        <ul>
          {shown.map((f) => (
            <li key={f.id}>
              {kindLabel(f.kind)} &ldquo;{f.text}&rdquo; <Badge tone="warn">{f.status}</Badge>
              {f.justification && <> — the presenter&apos;s reason: {f.justification}</>}
            </li>
          ))}
          {/* A fixed finding's text is what the presenter removed: it is not repeated here. */}
          {fixed > 0 && <li>{fixed} finding{fixed === 1 ? "" : "s"} fixed by the presenter (removed from the text)</li>}
        </ul>
      )}
      {justified.length > 0 && <p className="hint">Check the justified findings: the presenter says they are not
        identifying.</p>}
      <form onSubmit={onSubmit} noValidate>
        <div className="field">
          <label htmlFor={commentsId}>Comments for the presenter (required to return)</label>
          <textarea id={commentsId} rows={3} value={comments} onChange={(e) => setComments(e.target.value)}
            aria-invalid={missing ? true : undefined} aria-describedby={missing ? `${commentsId}-error` : undefined} />
          {missing && <p id={`${commentsId}-error`} className="field-error" role="alert">Say what the presenter should change.</p>}
        </div>
        <div className="buttons">
          <button type="submit" className="primary" disabled={state.fetching}>
            Approve<span className="visually-hidden"> “{c.title}”</span>
          </button>
          <button type="button" className="secondary" disabled={state.fetching} onClick={() => void decide("return")}>
            Return with comments<span className="visually-hidden"> “{c.title}”</span>
          </button>
        </div>
        <ErrorBox error={state.error} />
      </form>
    </article>
  );
}
