// A case for consultation: drafted from the template, screened for identifying details (each finding shown
// highlighted in the text with its kind, to fix by editing or to justify with a reason), submitted once no
// finding is open, then followed through review, recommendations and the presenter's follow-up report.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { CommunityCaseQuery } from "../gql/graphql";
import { Empty, ErrorBox, Loading } from "../components/States";
import { ErrorSummary } from "../components/ErrorSummary";
import { toProblem, type Problem } from "../lib/errors";
import { useSession } from "../lib/session";
import { caseStateLabel, caseSteps, editable, kindLabel, openFindings, segments } from "../community/highlight";
import { Badge } from "../community/ui";

const TemplateQuery = graphql(`
  query CommunityCaseTemplate {
    community {
      caseTemplate {
        fields {
          key
          label
          help
          maxLength
        }
      }
    }
  }
`);

const CaseQuery = graphql(`
  query CommunityCase($id: ID!) {
    community {
      case(id: $id) {
        id
        sessionId
        presenterId
        title
        fields {
          strengths
          needs
          tried
          question
        }
        findings {
          id
          field
          start
          end
          kind
          text
          status
          justification
        }
        state
        hubComments
        recommendations {
          id
          text
          dueOn
        }
        followUpOn
        followUpReport
        redacted
      }
    }
  }
`);

const Draft = graphql(`
  mutation CommunityDraftCase($input: DraftCaseInput!) {
    draftCase(input: $input) {
      id
      state
    }
  }
`);

const Update = graphql(`
  mutation CommunityUpdateCase($id: ID!, $input: UpdateCaseInput!) {
    updateCase(id: $id, input: $input) {
      id
      state
    }
  }
`);

const Justify = graphql(`
  mutation CommunityJustifyFindings($id: ID!, $items: [JustificationInput!]!) {
    justifyFindings(id: $id, items: $items) {
      id
      state
    }
  }
`);

const Submit = graphql(`
  mutation CommunitySubmitCase($id: ID!) {
    submitCase(id: $id) {
      id
      state
    }
  }
`);

const FollowUp = graphql(`
  mutation CommunityReportFollowUp($id: ID!, $report: String!) {
    reportFollowUp(id: $id, report: $report) {
      id
      state
    }
  }
`);

type Case = NonNullable<CommunityCaseQuery["community"]["case"]>;
type Finding = Case["findings"][number];
type FieldKey = "strengths" | "needs" | "tried" | "question";
type Texts = Record<FieldKey, string>;
const EMPTY: Texts = { strengths: "", needs: "", tried: "", question: "" };

export function CommunityCase() {
  const { id } = useParams();
  return id ? <ExistingCase id={id} /> : <NewCase />;
}

function Page({ title, sessionId, children }: { title: string; sessionId?: string | null; children: React.ReactNode }) {
  return (
    <section className="community" aria-labelledby="case-title">
      {sessionId && <p><Link to={`/community/sessions/${sessionId}`}>← The session</Link></p>}
      <h1 id="case-title">{title}</h1>
      {children}
    </section>
  );
}

function NewCase() {
  const [params] = useSearchParams();
  const sessionId = params.get("session");
  const navigate = useNavigate();
  const [state, draft] = useMutation(Draft);
  if (!sessionId) {
    return <Page title="Present a case"><Empty>Open a session first, then choose &ldquo;Present a case&rdquo;.</Empty></Page>;
  }
  return (
    <Page title="Present a case" sessionId={sessionId}>
      <p>Describe a real, stuck situation without anything that could identify the family: no names, exact dates,
        addresses, phone numbers, emails or record numbers. Saving screens every field; only you, your supervisor
        and the hub team see the case before it is approved.</p>
      <CaseForm
        initialTitle=""
        initial={EMPTY}
        busy={state.fetching}
        error={state.error}
        submitLabel="Save and screen"
        onSave={async (title, fields) => {
          const r = await draft({ input: { sessionId, title, fields } });
          if (r.data?.draftCase) navigate(`/community/cases/${r.data.draftCase.id}`, { replace: true });
        }}
      />
    </Page>
  );
}

function ExistingCase({ id }: { id: string }) {
  const { claims } = useSession();
  const [result, reexecute] = useQuery({ query: CaseQuery, variables: { id } });
  const refresh = () => reexecute({ requestPolicy: "network-only" });
  const c = result.data?.community.case;
  const [update, save] = useMutation(Update);
  const [submitState, submit] = useMutation(Submit);
  const [saved, setSaved] = useState<string | null>(null);

  if (result.fetching && !result.data) return <Page title="Case"><Loading what="the case" /></Page>;
  if (result.error && !result.data) {
    const code = toProblem(result.error)?.code;
    return (
      <Page title="Case">
        {code === "NOT_FOUND" || code === "FORBIDDEN"
          ? <Empty>This case does not exist or you may not see it.</Empty>
          : <ErrorBox error={result.error} />}
      </Page>
    );
  }
  if (!c) return <Page title="Case"><Empty>This case does not exist or you may not see it.</Empty></Page>;
  const mine = c.presenterId === claims.sub;
  const open = openFindings(c.findings);
  const canEdit = mine && editable(c.state);

  return (
    <Page title={c.title} sessionId={c.sessionId}>
      <p data-testid="case-state"><Badge tone={open.length ? "warn" : c.state === "returned" ? "bad" : "good"}>
        {caseStateLabel(c.state)}</Badge></p>
      <ol className="steps" aria-label="Where the case is">
        {caseSteps(c.state).map((st) => (
          <li key={st.state} className={st.status} aria-current={st.status === "current" ? "step" : undefined}>
            {st.label}
          </li>
        ))}
      </ol>
      {c.redacted && <p className="muted">The texts were removed after the retention period; the structure and the
        recommendations are kept.</p>}
      {c.state === "returned" && c.hubComments && (
        <div className="state error" role="alert" data-testid="hub-comments">
          <strong>The hub returned the case:</strong> {c.hubComments}
        </div>
      )}
      {canEdit ? (
        <>
          <Findings c={c} onChanged={refresh} />
          <CaseForm
            key={`${c.id}-${JSON.stringify(c.fields)}`}
            initialTitle={c.title}
            initial={c.fields}
            findings={c.findings}
            busy={update.fetching}
            error={update.error}
            submitLabel="Save and screen again"
            onSave={async (title, fields) => {
              setSaved(null);
              const r = await save({ id: c.id, input: { title, fields } });
              if (!r.error) {
                setSaved("Saved and screened again.");
                refresh();
              }
            }}
          />
          <p role="status" className="hint">{saved}</p>
          <section className="card" aria-labelledby="submit-title">
            <h2 id="submit-title">Submit for review</h2>
            {open.length > 0 ? (
              <p data-testid="submit-blocked">Fix or justify the {open.length} open finding{open.length === 1 ? "" : "s"}
                {" "}first.</p>
            ) : (
              <p>No open findings: the hub team can review the case.</p>
            )}
            <button type="button" className="primary" disabled={open.length > 0 || c.state !== "screened" || submitState.fetching}
              onClick={async () => {
                const r = await submit({ id: c.id });
                if (!r.error) refresh();
              }}>
              Submit for review
            </button>
            <ErrorBox error={submitState.error} />
          </section>
        </>
      ) : (
        <ReadOnlyCase c={c} />
      )}
      <Outcome c={c} mine={mine} onChanged={refresh} />
    </Page>
  );
}

const LABELS: Record<FieldKey, string> = {
  strengths: "The family's strengths",
  needs: "The family's needs",
  tried: "What has been tried",
  question: "Your question for the group",
};

function CaseForm({ initialTitle, initial, findings = [], busy, error, submitLabel, onSave }: {
  initialTitle: string;
  initial: Texts;
  findings?: readonly Finding[];
  busy: boolean;
  error?: Parameters<typeof toProblem>[0];
  submitLabel: string;
  onSave: (title: string, fields: Texts) => Promise<void>;
}) {
  const [template] = useQuery({ query: TemplateQuery });
  const [title, setTitle] = useState(initialTitle);
  // Only the four texts: the query's objects also carry __typename, which an input may not.
  const [texts, setTexts] = useState<Texts>({ strengths: initial.strengths ?? "", needs: initial.needs ?? "",
    tried: initial.tried ?? "", question: initial.question ?? "" });
  const [titleError, setTitleError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  const fields = template.data?.community.caseTemplate.fields ?? [];
  const problem = toProblem(error);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!title.trim()) {
      setTitleError("Give the case a short title (without names).");
      setAttempt((a) => a + 1);
      return;
    }
    setTitleError(null);
    await onSave(title.trim(), texts);
    setAttempt((a) => a + 1);
  };

  if (template.fetching && !template.data) return <Loading what="the case template" />;
  if (template.error && !template.data) return <ErrorBox error={template.error} />;
  return (
    <form className="card" onSubmit={(e) => void onSubmit(e)} noValidate aria-labelledby="form-title">
      <h2 id="form-title">The case</h2>
      <ErrorSummary title="The case was not saved" attempt={attempt}
        errors={titleError ? [{ message: titleError, target: "case-title-input" }] : []}
        message={problem?.message} />
      <div className="field">
        <label htmlFor="case-title-input">Title</label>
        <input id="case-title-input" value={title} maxLength={200} onChange={(e) => setTitle(e.target.value)}
          aria-invalid={titleError ? true : undefined} />
      </div>
      {fields.map((f) => {
        const key = f.key as FieldKey;
        const open = findings.filter((x) => x.field === key && x.status === "open").length;
        return (
          <div className="field" key={f.key}>
            <label htmlFor={`case-${f.key}`}>{f.label || LABELS[key]}</label>
            <p className="hint" id={`case-${f.key}-help`}>{f.help}</p>
            <textarea id={`case-${f.key}`} rows={4} maxLength={f.maxLength} value={texts[key] ?? ""}
              aria-describedby={`case-${f.key}-help`} aria-invalid={open > 0 ? true : undefined}
              onChange={(e) => setTexts((t) => ({ ...t, [key]: e.target.value }))} />
          </div>
        );
      })}
      <button type="submit" className="primary" disabled={busy}>{busy ? "Screening…" : submitLabel}</button>
    </form>
  );
}

/** The saved texts with each finding highlighted, and per finding: fix (edit the text) or justify. */
function Findings({ c, onChanged }: { c: Case; onChanged: () => void }) {
  const [state, justify] = useMutation(Justify);
  const [reasons, setReasons] = useState<Record<string, string>>({});
  const [missing, setMissing] = useState<string | null>(null);
  // The service screens a justification too (it may not name anyone): its answer shows on that finding.
  const [failed, setFailed] = useState<{ id: string; problem: Problem | null } | null>(null);
  const keys = ["title", ...Object.keys(LABELS)] as (FieldKey | "title")[];
  const withFindings = keys.filter((k) => c.findings.some((f) => f.field === k));
  const textOf = (k: FieldKey | "title") => (k === "title" ? c.title : c.fields[k]);
  if (c.findings.length === 0) {
    return (
      <section className="card" aria-labelledby="findings-title">
        <h2 id="findings-title">Privacy screening</h2>
        <p className="state ok" data-testid="no-findings">Nothing identifying was found in the saved text.</p>
      </section>
    );
  }
  const fix = (f: Finding) => {
    // Select the finding's text in its field, so it can be rewritten at once.
    const el = document.getElementById(f.field === "title" ? "case-title-input" : `case-${f.field}`) as
      HTMLTextAreaElement | HTMLInputElement | null;
    if (!el) return;
    const points = Array.from(el.value);
    const start = points.slice(0, f.start).join("").length;
    const end = points.slice(0, f.end).join("").length;
    el.focus();
    el.setSelectionRange(start, end);
    el.scrollIntoView({ block: "center" });
  };
  const onJustify = async (f: Finding) => {
    const reason = (reasons[f.id] ?? "").trim();
    if (!reason) {
      setMissing(f.id);
      document.getElementById(`justify-${f.id}`)?.focus();
      return;
    }
    setMissing(null);
    setFailed(null);
    const r = await justify({ id: c.id, items: [{ findingId: f.id, reason }] });
    if (r.error) setFailed({ id: f.id, problem: toProblem(r.error) });
    else onChanged();
  };
  return (
    <section className="card" aria-labelledby="findings-title">
      <h2 id="findings-title">Privacy screening</h2>
      <p>Highlighted: what could identify the family. Fix each one by rewriting the text, or justify it when it
        is not identifying (for example a colleague&apos;s first name).</p>
      {withFindings.map((k) => {
        const fs = c.findings.filter((f) => f.field === k);
        // A fixed finding's span belongs to the text as it was: only the others are marked in today's text.
        const marked = fs.filter((f) => f.status !== "fixed");
        return (
          <div key={k} data-testid={`findings-${k}`}>
            <h3>{k === "title" ? "Title" : LABELS[k]}</h3>
            {marked.length > 0 && <p className="casetext" data-testid={`highlighted-${k}`}>
              {segments(textOf(k), marked).map((seg, i) =>
                seg.findings.length === 0 ? <span key={i}>{seg.text}</span> : (
                  <mark key={i} className={seg.findings.every((f) => f.status !== "open") ? "done" : undefined}>
                    {seg.text}
                    <span className="kind">[{seg.findings.map((f) => kindLabel(f.kind)).join(", ")}]</span>
                  </mark>
                ))}
            </p>}
            <ul className="findings">
              {fs.map((f) => (
                <li key={f.id} data-testid="finding" data-kind={f.kind} data-status={f.status}>
                  <strong>{kindLabel(f.kind)}</strong>
                  {f.status === "fixed" ? " (removed from the text) " : <>: &ldquo;{f.text}&rdquo;{" "}</>}
                  <Badge tone={f.status === "open" ? "warn" : "good"}>{f.status}</Badge>
                  {f.justification && <span className="muted"> — {f.justification}</span>}
                  {f.status === "open" && (
                    <div className="justify">
                      <button type="button" className="secondary" onClick={() => fix(f)}>
                        Fix<span className="visually-hidden"> the {kindLabel(f.kind)} &ldquo;{f.text}&rdquo;</span>
                      </button>
                      <div className="field">
                        <label htmlFor={`justify-${f.id}`}>Or justify: why this is not identifying
                          <span className="visually-hidden"> (the {kindLabel(f.kind)} &ldquo;{f.text}&rdquo;)</span></label>
                        <input id={`justify-${f.id}`} value={reasons[f.id] ?? ""}
                          aria-invalid={missing === f.id ? true : undefined}
                          aria-describedby={missing === f.id ? `justify-${f.id}-error` : undefined}
                          onChange={(e) => setReasons((r) => ({ ...r, [f.id]: e.target.value }))} />
                      </div>
                      <button type="button" className="secondary" disabled={state.fetching} onClick={() => void onJustify(f)}>
                        Justify<span className="visually-hidden"> the {kindLabel(f.kind)} &ldquo;{f.text}&rdquo;</span>
                      </button>
                      {missing === f.id && <p id={`justify-${f.id}-error`} className="field-error" role="alert">
                        Write why this is not identifying.</p>}
                      {failed?.id === f.id && (
                        <div className="state error" role="alert" data-testid="justify-error">
                          {failed.problem?.message}
                          {(failed.problem?.fields ?? []).map((e, i) => <span key={i}> {e.message}</span>)}
                        </div>
                      )}
                    </div>
                  )}
                </li>
              ))}
            </ul>
          </div>
        );
      })}
    </section>
  );
}

function ReadOnlyCase({ c }: { c: Case }) {
  const keys = Object.keys(LABELS) as FieldKey[];
  return (
    <section className="card" aria-labelledby="text-title">
      <h2 id="text-title">The case</h2>
      <dl className="texts">
        {keys.map((k) => (
          <div key={k}>
            <dt>{LABELS[k]}</dt>
            <dd className="casetext">{c.fields[k] || <span className="muted">—</span>}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function Outcome({ c, mine, onChanged }: { c: Case; mine: boolean; onChanged: () => void }) {
  const [state, report] = useMutation(FollowUp);
  const [text, setText] = useState("");
  const [missing, setMissing] = useState(false);
  const box = useRef<HTMLTextAreaElement>(null);
  const due = c.state === "recommendations_issued" || c.state === "follow_up_due";
  useEffect(() => setMissing(false), [text]);
  if (c.recommendations.length === 0 && !c.followUpReport) return null;
  return (
    <section className="card" aria-labelledby="outcome-title">
      <h2 id="outcome-title">Recommendations</h2>
      <ol data-testid="recommendations">
        {c.recommendations.map((r) => (
          <li key={r.id}>{r.text}{r.dueOn && <span className="muted"> (by {r.dueOn})</span>}</li>
        ))}
      </ol>
      {c.followUpOn && <p>Follow-up report due on <strong>{c.followUpOn}</strong>.</p>}
      {c.followUpReport ? (
        <>
          <h3>What happened</h3>
          <p className="casetext" data-testid="follow-up-report">{c.followUpReport}</p>
        </>
      ) : mine && due ? (
        <form onSubmit={async (e) => {
          e.preventDefault();
          if (!text.trim()) { setMissing(true); box.current?.focus(); return; }
          const r = await report({ id: c.id, report: text.trim() });
          if (!r.error) onChanged();
        }} noValidate>
          <div className="field">
            <label htmlFor="follow-up">Your follow-up report: what happened</label>
            <textarea id="follow-up" ref={box} rows={4} value={text} onChange={(e) => setText(e.target.value)}
              aria-invalid={missing ? true : undefined} aria-describedby={missing ? "follow-up-error" : undefined} />
            {missing && <p id="follow-up-error" className="field-error" role="alert">Write what happened first.</p>}
          </div>
          <button type="submit" className="primary" disabled={state.fetching}>Send the follow-up report</button>
          <ErrorBox error={state.error} />
        </form>
      ) : null}
    </section>
  );
}

