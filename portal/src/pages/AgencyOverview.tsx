// The agency overview: implementation stage, readiness, the plan, certification and turnover — chart first, with
// the same data as a table behind every chart. Agency admins mark plan actions done here.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useMutation, useQuery, type UseQueryState } from "urql";
import { graphql } from "../gql";
import type { AgencyCertificationQuery, AgencyOverviewQuery } from "../gql/graphql";
import { Chart } from "../components/Chart";
import { DataTable } from "../components/DataTable";
import { Empty, ErrorBox, Loading } from "../components/States";
import { toProblem } from "../lib/errors";
import { useLiveEvents } from "../lib/live";
import { useSession } from "../lib/session";
import "../components/overview.css";
import {
  INSUFFICIENT,
  actionRows,
  domainLabel,
  domainLabels,
  pct,
  pct100,
  readinessBars,
  readinessOption,
  reasonWords,
  shareOption,
  shareSeries,
  stageLabel,
  stageRows,
  stageSteps,
  turnoverOption,
  type ActionRow,
  type DomainBar,
  type ShareSeries,
  type TeamTurnoverIn,
} from "../charts/overview";

// Everything the readiness service knows about the agency, in one request.
const OverviewQuery = graphql(`
  query AgencyOverview($id: ID!) {
    agency(id: $id) {
      id
      name
      region
      programs
      stage
      stageEnteredOn
      readinessLevel
      planApproved
      stageHistory { stage previousStage enteredOn reason certifiedShare }
      readinessRounds {
        id
        title
        status
        openedAt
        closedAt
        respondents
        level
        reasons
        results { key status respondents mean spread agreement }
        policy { readyAt conditionsAt minRespondents }
        instrument { id scaleMin scaleMax domains { key label } }
      }
      plan {
        id
        approved
        approvedAt
        changedSinceApproval
        openActions
        overdueActions
        actions { id title status dueOn overdue readinessDomain origin completedOn }
      }
      turnover {
        asOf
        agency { active joined12m left12m newStaffShare turnoverRate }
        teams { teamId teamName active joined12m left12m newStaffShare turnoverRate }
      }
      trainingClearance { cleared reasons }
    }
  }
`);

// Certification comes from the fidelity service: asked separately, so its outage leaves the rest of the page.
const CertificationQuery = graphql(`
  query AgencyCertification($id: ID!, $months: Int!) {
    agency(id: $id) {
      id
      fidelitySummary {
        asOf
        fullImplementationPercent
        agency { active certified certifiedPercent inRecertificationWindow lapsedLast90Days drifting meanScoreLast90Days }
      }
      certifiedShareHistory(months: $months) { month on active certified certifiedPercent }
    }
  }
`);

const AgenciesQuery = graphql(`
  query AgencyChoices {
    agencies { id name region }
  }
`);

const CompleteAction = graphql(`
  mutation CompletePlanAction($agencyId: ID!, $actionId: ID!, $key: String) {
    updatePlanAction(agencyId: $agencyId, actionId: $actionId, input: { status: "done" }, idempotencyKey: $key) {
      id
      status
      completedOn
      overdue
    }
  }
`);

// Events that change something on this page (contracts/readiness.py, contracts/fidelity.py); matched by substring.
const LIVE_TYPES = [
  "ReadinessAssessed", "ReadinessRoundOpened", "ReadinessResponseRecorded", "ImplementationPlanApproved",
  "PlanActionAdded", "PlanActionUpdated", "PlanActionCompleted", "ImplementationStageChanged",
  "StaffMember", "StaffRole", "PractitionerCertified", "Certification", "RecertificationDue",
  "FidelityDrift", "Observation",
];
const SHARE_MONTHS = 12;

export function AgencyOverview() {
  const { agencyId = "" } = useParams();
  const { claims } = useSession();
  const partner = claims.roles.includes("platform_admin");
  const canComplete = claims.roles.includes("agency_admin") || partner;

  const [overview, refetchOverview] = useQuery({ query: OverviewQuery, variables: { id: agencyId } });
  const [cert, refetchCert] = useQuery({
    query: CertificationQuery, variables: { id: agencyId, months: SHARE_MONTHS },
  });

  const refetch = useCallback(() => {
    refetchOverview({ requestPolicy: "network-only" });
    refetchCert({ requestPolicy: "network-only" });
  }, [refetchOverview, refetchCert]);

  // A burst of events (a round closing, a batch of observations) becomes one refetch.
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => { if (timer.current) clearTimeout(timer.current); }, []);
  const agency = overview.data?.agency;
  const last = useLiveEvents(agency ? agencyId : null, LIVE_TYPES, () => {
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(refetch, 300);
  });

  const problem = toProblem(overview.error);
  const denied = !overview.fetching && !agency
    && (!problem || ["FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT"].includes(problem.code ?? ""));

  return (
    <section className="overview" aria-labelledby="overview-title">
      <h1 id="overview-title">{agency ? agency.name : "Agency overview"}</h1>
      {partner && <AgencySwitcher current={agencyId} />}
      {agency && (
        <p className="muted">
          Agency overview{agency.region ? ` · ${agency.region}` : ""}
          {agency.programs.length > 0 ? ` · ${agency.programs.join(", ")}` : ""}
          <span className="live" aria-live="polite" data-testid="live">
            {last ? ` · Live: updated ${new Date(last.time).toLocaleTimeString()}` : ""}
          </span>
        </p>
      )}
      {overview.fetching && !agency && <Loading what="the agency overview" />}
      {denied && (
        <div className="state error" role="alert" data-testid="no-access">
          <p><strong>Agency not found, or you have no access to it.</strong></p>
          <p>
            {partner ? "Pick an agency above. " : "You can only see your own agency. "}
            <Link to="/">Back to the start page</Link>
          </p>
        </div>
      )}
      {!denied && !agency && problem && <ErrorBox error={overview.error} />}
      {agency && (
        <>
          {overview.error && <ErrorBox error={overview.error} />}
          <div className="grid two">
            <StageSection stage={agency.stage} enteredOn={agency.stageEnteredOn} history={agency.stageHistory} />
            <TrainingGate cleared={agency.trainingClearance.cleared} reasons={agency.trainingClearance.reasons} />
          </div>
          <ReadinessSection rounds={agency.readinessRounds} />
          <PlanSection agencyId={agencyId} plan={agency.plan} canComplete={canComplete} onChanged={refetch}
            domains={domainLabels(agency.readinessRounds)} />
          <CertificationSection result={cert} />
          <TurnoverSection turnover={agency.turnover} />
        </>
      )}
    </section>
  );
}

// ---- the partner's agency picker -------------------------------------------------------------------

function AgencySwitcher({ current }: { current: string }) {
  const [result] = useQuery({ query: AgenciesQuery });
  const navigate = useNavigate();
  const agencies = result.data?.agencies ?? [];
  const known = agencies.some((a) => a.id === current);
  return (
    <div className="field switcher">
      <label htmlFor="agency-switcher">Agency</label>
      {result.fetching && agencies.length === 0 ? <Loading what="agencies" /> : (
        <select id="agency-switcher" value={known ? current : ""}
          onChange={(e) => { if (e.target.value) navigate(`/agency/${e.target.value}`); }}>
          {!known && <option value="">Pick an agency…</option>}
          {agencies.map((a) => (
            <option key={a.id} value={a.id}>{a.name}{a.region ? ` (${a.region})` : ""}</option>
          ))}
        </select>
      )}
      <ErrorBox error={result.error} />
    </div>
  );
}

// ---- stage -------------------------------------------------------------------------------------------

type Overview = NonNullable<AgencyOverviewQuery["agency"]>;

function StageSection({ stage, enteredOn, history }: {
  stage: string; enteredOn: string; history: Overview["stageHistory"];
}) {
  const steps = stageSteps(stage, history);
  const rows = stageRows(history);
  return (
    <section className="card" aria-labelledby="stage-title" data-testid="stage">
      <h2 id="stage-title">Implementation stage</h2>
      <p>
        <strong data-testid="current-stage">{stageLabel(stage)}</strong> since {enteredOn}
      </p>
      <ol className="stages" aria-label="The five implementation stages">
        {steps.map((s) => (
          <li key={s.key} className={s.state} aria-current={s.state === "current" ? "step" : undefined}>
            <span className="stage-name">{s.label}</span>
            <span className="stage-when">
              {s.state === "current" ? "now" : s.state === "done" ? (s.enteredOn ?? "passed") : "ahead"}
            </span>
          </li>
        ))}
      </ol>
      <h3>How the agency got here</h3>
      {rows.length === 0 ? <Empty>No stage has been recorded yet.</Empty> : (
        <ol className="timeline" aria-label="Stage history, newest first">
          {rows.map((r, i) => (
            <li key={`${r.enteredOn}-${i}`}>
              <strong>{r.label}</strong> <time dateTime={r.enteredOn}>{r.enteredOn}</time>
              <br />
              <span>{r.reason}</span>
              {r.share !== "—" && <span className="muted"> · certified share {r.share}</span>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

// ---- training gate ----------------------------------------------------------------------------------

function TrainingGate({ cleared, reasons }: { cleared: boolean; reasons: string[] }) {
  return (
    <section className="card" aria-labelledby="gate-title" data-testid="training-gate">
      <h2 id="gate-title">Training gate</h2>
      <p className={`state ${cleared ? "ok" : "error"}`}>
        <strong>{cleared ? "Cleared for training" : "Not cleared for training"}</strong>
      </p>
      {reasons.length > 0 && (
        <>
          <p className="muted">{cleared ? "Notes:" : "What still stands in the way:"}</p>
          <ul>{reasons.map((r) => <li key={r}>{r}</li>)}</ul>
        </>
      )}
    </section>
  );
}

// ---- readiness --------------------------------------------------------------------------------------

const LEVEL_WORDS: Record<string, string> = {
  ready: "Ready", ready_with_conditions: "Ready with conditions", not_ready: "Not ready",
};

function ReadinessSection({ rounds }: { rounds: Overview["readinessRounds"] }) {
  const closed = rounds.filter((r) => r.status === "closed");
  const latest = closed[closed.length - 1];
  const open = rounds.filter((r) => r.status === "open");
  const bars = useMemo(() => (latest ? readinessBars(latest.results, domainLabels([latest])) : []), [latest]);
  // The service names domains by key in its reasons; the bars know each key's words.
  const words = useMemo(() => Object.fromEntries(bars.map((b) => [b.key, b.label])), [bars]);
  const option = useMemo(() => latest && readinessOption(bars, latest.policy, {
    min: latest.instrument?.scaleMin ?? 1, max: latest.instrument?.scaleMax ?? 5,
  }), [bars, latest]);
  const gaps = bars.filter((b) => b.status === "gap").map((b) => b.label);
  const hidden = bars.filter((b) => b.status === "insufficient").map((b) => b.label);
  return (
    <section className="card" aria-labelledby="readiness-title" data-testid="readiness">
      <h2 id="readiness-title">Readiness</h2>
      {open.map((r) => (
        <p key={r.id} className="muted">A round is open: “{r.title}”, {r.respondents} answered so far.</p>
      ))}
      {!latest || !option ? <Empty>No readiness round has closed yet.</Empty> : (
        <>
          <p>
            Latest round: <strong>{latest.title}</strong>{latest.closedAt ? `, closed ${latest.closedAt.slice(0, 10)}` : ""}
            {" · "}{latest.respondents} respondents{" · "}
            <span className={`badge ${latest.level === "ready" ? "good" : latest.level === "not_ready" ? "bad" : "warn"}`}>
              {LEVEL_WORDS[latest.level ?? ""] ?? latest.level ?? "Not assessed"}
            </span>
          </p>
          {latest.reasons.length > 0 && (
            <ul data-testid="readiness-reasons">{latest.reasons.map((r) => <li key={r}>{reasonWords(r, words)}</li>)}</ul>
          )}
          <Chart
            testId="readiness-chart"
            option={option}
            height={Math.max(220, bars.length * 56 + 60)}
            label={readinessLabel(bars, latest.policy.readyAt)}
            table={<ReadinessTable bars={bars} />}
          />
          <p className="muted">
            Bars show each domain's mean answer; ready at {latest.policy.readyAt}, conditions below it down to{" "}
            {latest.policy.conditionsAt}. Domains with fewer than {latest.policy.minRespondents} respondents show no
            figures, to keep answers private.
            {gaps.length > 0 && <> Gaps: <strong>{gaps.join(", ")}</strong>.</>}
            {hidden.length > 0 && <> {INSUFFICIENT}: {hidden.join(", ")}.</>}
          </p>
        </>
      )}
    </section>
  );
}

function readinessLabel(bars: DomainBar[], readyAt: number): string {
  const parts = bars.map((b) => b.mean == null ? `${b.label}: ${INSUFFICIENT}`
    : `${b.label} ${b.mean.toFixed(2)}${b.status === "gap" ? " (gap)" : ""}`);
  return `Readiness per domain, mean answer against the ready line at ${readyAt}: ${parts.join("; ")}.`;
}

function ReadinessTable({ bars }: { bars: DomainBar[] }) {
  return (
    <DataTable
      caption="Readiness per domain"
      rowKey={(b) => b.key}
      rows={bars}
      columns={[
        { header: "Domain", cell: (b) => b.label },
        { header: "Status", cell: (b) => (
          <span className={`badge ${b.status === "ok" ? "good" : b.status === "gap" ? "bad" : "warn"}`}>
            {b.statusLabel}
          </span>
        ) },
        { header: "Respondents", numeric: true, cell: (b) => b.respondents },
        { header: "Mean", numeric: true, cell: (b) => (b.mean == null ? "—" : b.mean.toFixed(2)) },
        { header: "Spread", numeric: true, cell: (b) => (b.spread == null ? "—" : b.spread.toFixed(2)) },
        { header: "Agreement", numeric: true, cell: (b) => (b.agreement == null ? "—" : b.agreement.toFixed(2)) },
      ]}
    />
  );
}

// ---- the plan ---------------------------------------------------------------------------------------

function PlanSection({ agencyId, plan, canComplete, onChanged, domains }: {
  agencyId: string; plan: Overview["plan"]; canComplete: boolean; onChanged: () => void;
  domains: Record<string, string>;
}) {
  const rows = actionRows(plan.actions);
  const [done, complete] = useMutation(CompleteAction);
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  // One key per action: a retried click after a lost answer completes it once.
  const keys = useRef(new Map<string, string>());

  const markDone = async (row: ActionRow) => {
    if (!keys.current.has(row.id)) keys.current.set(row.id, crypto.randomUUID());
    setBusy(row.id);
    setMessage(null);
    const r = await complete({ agencyId, actionId: row.id, key: keys.current.get(row.id) ?? null });
    setBusy(null);
    if (!r.error) {
      setMessage(`“${row.title}” is done.`);
      onChanged();
    }
  };

  return (
    <section className="card" aria-labelledby="plan-title" data-testid="plan">
      <h2 id="plan-title">Implementation plan</h2>
      <dl className="figures">
        <div><dt>Plan</dt><dd>{plan.approved ? "Approved" : "Not approved"}</dd></div>
        <div><dt>Open actions</dt><dd data-testid="open-actions">{plan.openActions}</dd></div>
        <div><dt>Overdue</dt><dd data-testid="overdue-actions">{plan.overdueActions}</dd></div>
      </dl>
      {plan.approved && plan.changedSinceApproval && (
        <p className="muted">The plan changed since it was approved.</p>
      )}
      <div role="status" aria-live="polite">
        {message && <p className="state ok" data-testid="plan-message">{message}</p>}
      </div>
      <ErrorBox error={done.error} />
      {rows.length === 0 ? <Empty>The plan has no actions yet.</Empty> : (
        <DataTable
          caption="Plan actions, overdue first"
          rowKey={(a) => a.id}
          rows={rows}
          columns={[
            { header: "Action", cell: (a) => <span data-testid="action-title">{a.title}</span> },
            { header: "Status", cell: (a) => (
              <span className="badges">
                <span className={`badge ${a.status === "done" ? "good" : a.status === "dropped" ? "muted" : "warn"}`}>
                  {a.statusLabel}
                </span>
                {a.marker && <> <span className="badge bad" data-testid="overdue">{a.marker}</span></>}
              </span>
            ) },
            { header: "Due", cell: (a) => (
              <span className="nowrap">{a.status === "done" ? `done ${a.completedOn ?? ""}` : (a.dueOn ?? "—")}</span>
            ) },
            { header: "Readiness domain",
              cell: (a) => (a.readinessDomain ? domainLabel(a.readinessDomain, domains) : "—") },
            ...(canComplete ? [{ header: "Mark done", cell: (a: ActionRow) => a.completable ? (
              <button type="button" className="secondary" disabled={busy === a.id}
                aria-label={`Mark done: ${a.title}`} onClick={() => void markDone(a)}>
                {busy === a.id ? "Saving…" : "Mark done"}
              </button>
            ) : <span className="muted">—</span> }] : []),
          ]}
        />
      )}
    </section>
  );
}

// ---- certification ----------------------------------------------------------------------------------

function CertificationSection({ result }: { result: UseQueryState<AgencyCertificationQuery> }) {
  const agency = result.data?.agency;
  const summary = agency?.fidelitySummary;
  const series = useMemo(() => agency && summary
    ? shareSeries(agency.certifiedShareHistory, summary.fullImplementationPercent) : null, [agency, summary]);
  const option = useMemo(() => series && shareOption(series), [series]);
  return (
    <section className="card" aria-labelledby="cert-title" data-testid="certification">
      <h2 id="cert-title">Certified staff</h2>
      {result.fetching && !agency && <Loading what="certification" />}
      <ErrorBox error={result.error} />
      {summary && (
        <dl className="figures">
          <div><dt>Certified</dt><dd data-testid="certified-percent">{pct100(summary.agency.certifiedPercent)}</dd></div>
          <div><dt>Certified / active</dt><dd>{summary.agency.certified} / {summary.agency.active}</dd></div>
          <div><dt>Due for recertification</dt><dd>{summary.agency.inRecertificationWindow}</dd></div>
          <div><dt>Lapsed (90 days)</dt><dd>{summary.agency.lapsedLast90Days}</dd></div>
          <div><dt>Drifting</dt><dd>{summary.agency.drifting}</dd></div>
          <div><dt>Mean score (90 days)</dt>
            <dd>{summary.agency.meanScoreLast90Days == null ? "—" : summary.agency.meanScoreLast90Days.toFixed(1)}</dd></div>
        </dl>
      )}
      {series && (series.months.length === 0 ? <Empty>No certification history yet.</Empty> : (
        <>
          <Chart
            testId="share-chart"
            option={option ?? {}}
            label={shareLabel(series)}
            table={<ShareTable series={series} />}
          />
          <p className="muted">
            Full Implementation needs at least {series.line}% of practitioners certified
            {series.reached ? " — the agency is at or above the line." : " — the agency is below the line."}
          </p>
        </>
      ))}
    </section>
  );
}

function shareLabel(s: ShareSeries): string {
  const lastKnown = [...s.rows].reverse().find((r) => r.certifiedPercent != null);
  return `Certified share by month over ${s.months.length} months against the ${s.line}% Full Implementation line`
    + (lastKnown ? `; latest ${lastKnown.month}: ${lastKnown.percent}.` : ".");
}

function ShareTable({ series }: { series: ShareSeries }) {
  return (
    <DataTable
      caption={`Certified share by month (Full Implementation line: ${series.line}%)`}
      rowKey={(r) => r.month}
      rows={series.rows}
      columns={[
        { header: "Month", cell: (r) => r.month },
        { header: "Active", numeric: true, cell: (r) => r.active },
        { header: "Certified", numeric: true, cell: (r) => r.certified },
        { header: "Share", numeric: true, cell: (r) => r.percent },
        { header: `At ${series.line}%?`, cell: (r) => (r.meetsLine ? "Yes" : "No") },
      ]}
    />
  );
}

// ---- turnover ---------------------------------------------------------------------------------------

function TurnoverSection({ turnover }: { turnover: Overview["turnover"] }) {
  const a = turnover.agency;
  const teams: TeamTurnoverIn[] = turnover.teams;
  const option = useMemo(() => turnoverOption(teams), [teams]);
  return (
    <section className="card" aria-labelledby="turnover-title" data-testid="turnover">
      <h2 id="turnover-title">Turnover</h2>
      <p className="muted">The trailing 12 months, as of {turnover.asOf}.</p>
      <dl className="figures">
        <div><dt>Active staff</dt><dd>{a.active}</dd></div>
        <div><dt>Joined</dt><dd>{a.joined12m}</dd></div>
        <div><dt>Left</dt><dd>{a.left12m}</dd></div>
        <div><dt>Turnover rate</dt><dd>{pct(a.turnoverRate)}</dd></div>
        <div><dt>New staff (under 6 months)</dt><dd>{pct(a.newStaffShare)}</dd></div>
      </dl>
      {teams.length === 0 ? <Empty>No teams yet.</Empty> : (
        <Chart
          testId="turnover-chart"
          option={option}
          height={Math.max(200, teams.length * 60 + 60)}
          label={"Active staff, joined and left in 12 months per team: " + teams.map((t) =>
            `${t.teamName} ${t.active} active, joined ${t.joined12m}, left ${t.left12m}`).join("; ") + "."}
          table={
            <DataTable
              caption="Turnover per team, trailing 12 months"
              rowKey={(t, i) => t.teamId ?? `none-${i}`}
              rows={teams}
              columns={[
                { header: "Team", cell: (t) => t.teamName },
                { header: "Active", numeric: true, cell: (t) => t.active },
                { header: "Joined", numeric: true, cell: (t) => t.joined12m },
                { header: "Left", numeric: true, cell: (t) => t.left12m },
                { header: "Turnover rate", numeric: true, cell: (t) => pct(t.turnoverRate) },
                { header: "New staff", numeric: true, cell: (t) => pct(t.newStaffShare) },
              ]}
            />
          }
        />
      )}
    </section>
  );
}
