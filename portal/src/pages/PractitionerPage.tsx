// The practitioner page: the fidelity control chart with drift flags, certification, and coaching tasks.
// For the practitioner themself, their coach and supervisors; the services decide who may read whose data.
import { useCallback, useMemo, useState } from "react";
import { useNavigate, useParams } from "react-router";
import { useQuery } from "urql";
import { graphql } from "../gql";
import type { PractitionerDetailsQuery } from "../gql/graphql";
import { Chart } from "../components/Chart";
import { DataTable, type Column } from "../components/DataTable";
import { Empty, ErrorBox, Loading } from "../components/States";
import { FollowUpForm } from "../components/FollowUpForm";
import { controlChart, controlChartRows, metricLabel, TOTAL, type ControlChartRow } from "../charts/controlChart";
import { certificationStatus, driftStatus, eventLabel, stepText, taskKind, taskStatus } from "../charts/practitionerStatus";
import { useLiveEvents, type LiveEvent } from "../lib/live";
import { can, useSession } from "../lib/session";

const DEFAULT_FAMILY = "miiwrap-practice";

const PractitionerPicker = graphql(`
  query PractitionerPicker($agency: ID!) {
    agency(id: $agency) {
      id
      staff(status: "active", role: "practitioner") {
        id
        name
        roles
      }
    }
  }
`);

const ActivePracticeInstrument = graphql(`
  query ActivePracticeInstrument {
    instruments(status: "active", kind: "practice_observation") {
      id
      family
      name
      version
      competencies
    }
  }
`);

const PractitionerSeries = graphql(`
  query PractitionerSeries($id: ID!, $family: String!, $metric: String!) {
    practitioner(id: $id) {
      id
      fidelitySeries(family: $family, metric: $metric) {
        observationId
        observedOn
        seq
        score
        ewma
        centre
        lowerLimit
        upperLimit
        passThreshold
        flagged
      }
    }
  }
`);

const PractitionerDetails = graphql(`
  query PractitionerDetails($id: ID!) {
    practitioner(id: $id) {
      id
      drift {
        family
        drifting
        metrics {
          metric
          flagged
          ewma
          observations
        }
      }
      certification(track: "practitioner") {
        status
        current {
          certifiedOn
          expiresOn
          windowOpensOn
        }
        missing
        timeline {
          certificationId
          revision
          status
          on
          reason
          expiresOn
        }
      }
      coachingTasks {
        id
        kind
        title
        status
        dueOn
        observationId
      }
    }
  }
`);

// Events that change what this page shows; matched on the practitioner they are about.
const LIVE_TYPES = ["Observation", "Certif", "Certified", "RecertificationDue", "Drift", "CoachingTask"];

function samePerson(a: unknown, b: string): boolean {
  return typeof a === "string" && a.toLowerCase() === b.toLowerCase();
}

/** Whether a live event concerns this practitioner: by its data's practitioner/person id, or its subject. */
export function concerns(e: LiveEvent, id: string): boolean {
  const data = (e.data ?? {}) as Record<string, unknown>;
  return samePerson(data.practitioner_id, id) || samePerson(data.person_id, id) || samePerson(e.subject, id);
}

function isoToday(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

export function PractitionerPage() {
  const { id = "" } = useParams();
  // A fresh view per practitioner: the competency picked and the live note belong to the person shown.
  return <PractitionerView key={id} id={id} />;
}

function PractitionerView({ id }: { id: string }) {
  const { claims, name: myName } = useSession();
  const navigate = useNavigate();
  const roles = claims.roles;
  const picks = can.seePractitioners(roles);
  const coaches = roles.includes("coach") || roles.includes("supervisor");
  const [metric, setMetric] = useState(TOTAL);
  const [live, setLive] = useState<string | null>(null);

  const [picker] = useQuery({ query: PractitionerPicker, variables: { agency: claims.agency }, pause: !picks });
  const [instruments] = useQuery({ query: ActivePracticeInstrument });
  const instrument = instruments.data?.instruments[0];
  const family = instrument?.family ?? DEFAULT_FAMILY;
  const competencies = instrument?.competencies ?? [];
  // Wait for the instrument (its family names the series) unless it cannot be read: then the default family.
  const seriesReady = !!id && (!!instruments.data || !!instruments.error);

  const [series, refetchSeries] = useQuery({
    query: PractitionerSeries, variables: { id, family, metric }, pause: !seriesReady,
  });
  const [details, refetchDetails] = useQuery({ query: PractitionerDetails, variables: { id }, pause: !id });

  const refresh = useCallback(() => {
    refetchSeries({ requestPolicy: "network-only" });
    refetchDetails({ requestPolicy: "network-only" });
  }, [refetchSeries, refetchDetails]);

  useLiveEvents(id ? claims.agency : null, LIVE_TYPES, (e) => {
    if (!concerns(e, id)) return;
    setLive(`${eventLabel(e.type)} at ${new Date(e.time).toLocaleTimeString()}`);
    refresh();
  });

  const people = picker.data?.agency?.staff ?? [];
  const person = people.find((p) => samePerson(p.id, id));
  const name = person?.name ?? (samePerson(claims.sub, id) ? myName : null);
  const title = name ?? "Practitioner";

  const points = series.data?.practitioner.fidelitySeries;
  const chart = useMemo(() => controlChart(points ?? [], metric), [points, metric]);
  const rows = useMemo(() => controlChartRows(points ?? []), [points]);
  const practitioner = details.data?.practitioner;

  return (
    <section aria-labelledby="practitioner-h1">
      <div style={{ display: "flex", flexWrap: "wrap", alignItems: "baseline", gap: "0 1rem" }}>
        <h1 id="practitioner-h1">{id ? `Practice: ${title}` : "Practitioners"}</h1>
        <p className="live" aria-live="polite" data-testid="live">{live && <><span aria-hidden="true">● </span>Live — {live}</>}</p>
      </div>

      {picks && (
        <div className="field" style={{ maxWidth: "24rem" }}>
          <label htmlFor="practitioner-pick">Practitioner</label>
          {picker.fetching && !picker.data ? <Loading what="practitioners" /> : (
            <select id="practitioner-pick" value={person ? person.id : ""}
                    onChange={(e) => { if (e.target.value) navigate(`/practitioners/${e.target.value}`); }}>
              {!person && <option value="">Choose a practitioner</option>}
              {people.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
            </select>
          )}
          <ErrorBox error={picker.error} />
          {picker.data && people.length === 0 && <Empty>No active practitioners in this agency yet.</Empty>}
        </div>
      )}

      {!id ? (
        <Empty>Choose a practitioner to see their fidelity, certification and coaching tasks.</Empty>
      ) : (
        <div className="grid">
          <section className="card" aria-labelledby="fidelity-h">
            <h2 id="fidelity-h">Fidelity{instrument ? ` on ${instrument.name}` : ""}</h2>
            <div style={{ display: "flex", flexWrap: "wrap", alignItems: "flex-end", gap: "0 1.5rem" }}>
              <div className="field">
                <label htmlFor="metric-pick">Competency</label>
                <select id="metric-pick" value={metric} onChange={(e) => setMetric(e.target.value)}>
                  <option value={TOTAL}>{metricLabel(TOTAL)}</option>
                  {competencies.map((c) => <option key={c} value={c}>{c}</option>)}
                </select>
              </div>
              <DriftBadge drift={practitioner?.drift} family={family} />
            </div>
            <ErrorBox error={series.error} />
            {!points && !series.error && <Loading what="the fidelity series" />}
            {points && chart.empty && (
              <Empty>No observations on this instrument yet: the chart starts with the first one.</Empty>
            )}
            {points && !chart.empty && (
              <>
                <Chart option={chart.option} label={chart.label} height={320} testId="control-chart"
                       table={<SeriesTable rows={rows} metric={metric} />} />
                <ControlChartKey />
              </>
            )}
          </section>

          <div className="grid two">
            <section className="card" aria-labelledby="cert-h">
              <h2 id="cert-h">Certification</h2>
              <ErrorBox error={details.error} />
              {!practitioner && !details.error && <Loading what="certification" />}
              {practitioner && <CertificationPanel cert={practitioner.certification} />}
            </section>

            <section className="card" aria-labelledby="tasks-h">
              <h2 id="tasks-h">Coaching tasks</h2>
              <ErrorBox error={details.error} />
              {!practitioner && !details.error && <Loading what="coaching tasks" />}
              {practitioner && <TaskList tasks={practitioner.coachingTasks} />}
              {coaches && (
                <FollowUpForm practitionerId={id} practitionerName={title} onOpened={refresh} />
              )}
            </section>
          </div>
        </div>
      )}
    </section>
  );
}

type Details = PractitionerDetailsQuery["practitioner"];

function DriftBadge({ drift, family }: { drift: Details["drift"] | undefined; family: string }) {
  if (!drift) return null;
  const s = driftStatus(drift, family);
  return (
    <div className="field" data-testid="drift-status">
      <span className="muted">Drift: </span>
      <span className={`badge ${s.tone}`}>{s.label}</span>
      {s.details.length > 0 && (
        <ul className="drift-details">{s.details.map((d) => <li key={d}>{d}</li>)}</ul>
      )}
    </div>
  );
}

function ControlChartKey() {
  return (
    <p className="hint chart-key">
      Dots are observation scores; the solid orange line is the EWMA (a weighted running mean); dashed lines are the
      control limits, dotted the centre; the green line is the pass line; red triangles mark drift flags.
    </p>
  );
}

function SeriesTable({ rows, metric }: { rows: ControlChartRow[]; metric: string }) {
  const columns: Column<ControlChartRow>[] = [
    { header: "Observed on", cell: (r) => <span style={{ whiteSpace: "nowrap" }}>{r.observedOn}</span> },
    { header: "#", cell: (r) => r.seq, numeric: true },
    { header: metricLabel(metric), numeric: true, cell: (r) => (
      <span style={{ whiteSpace: "nowrap" }}>{r.score}{r.belowPass && <span className="muted"> below pass</span>}</span>
    ) },
    { header: "EWMA", cell: (r) => r.ewma, numeric: true },
    { header: "Lower limit", cell: (r) => r.lowerLimit, numeric: true },
    { header: "Centre", cell: (r) => r.centre, numeric: true },
    { header: "Upper limit", cell: (r) => r.upperLimit, numeric: true },
    { header: "Pass line", cell: (r) => r.passThreshold, numeric: true },
    { header: "Drift flag", cell: (r) => <span style={{ whiteSpace: "nowrap" }}>{r.drift}</span> },
  ];
  return (
    <div data-testid="series-table">
      <DataTable caption={`Observations, ${metricLabel(metric).toLowerCase()}, oldest first`} columns={columns}
                 rows={rows} rowKey={(r) => r.key} />
    </div>
  );
}

function CertificationPanel({ cert }: { cert: Details["certification"] }) {
  const s = certificationStatus(cert.status);
  return (
    <div data-testid="certification">
      <p><span className={`badge ${s.tone}`}>{s.label}</span></p>
      {cert.current && (
        <dl className="figures">
          <div><dt>Certified on</dt><dd>{cert.current.certifiedOn}</dd></div>
          <div><dt>Recertify from</dt><dd>{cert.current.windowOpensOn}</dd></div>
          <div><dt>Expires on</dt><dd>{cert.current.expiresOn}</dd></div>
        </dl>
      )}
      {cert.missing.length > 0 && (
        <>
          <h3>Still missing</h3>
          <ul className="missing" data-testid="cert-missing">{cert.missing.map((m) => <li key={m}>{m}</li>)}</ul>
        </>
      )}
      <h3>Timeline</h3>
      {cert.timeline.length === 0 ? <Empty>No certification yet.</Empty> : (
        <ol className="timeline" data-testid="cert-timeline">
          {cert.timeline.map((t) => (
            <li key={`${t.certificationId}/${t.revision}`}>
              <strong>{t.on}</strong> — {stepText(t)}
              <span className="muted"> (expires {t.expiresOn})</span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function TaskList({ tasks }: { tasks: Details["coachingTasks"] }) {
  const today = isoToday();
  // Newest first: what a coach acts on next is at the top.
  const rows = [...tasks].reverse();
  if (rows.length === 0) return <Empty>No coaching tasks yet.</Empty>;
  const columns: Column<Details["coachingTasks"][number]>[] = [
    { header: "Task", cell: (t) => t.title || taskKind(t.kind) },
    { header: "Kind", cell: (t) => taskKind(t.kind) },
    { header: "Due on", cell: (t) => <span style={{ whiteSpace: "nowrap" }}>{t.dueOn}</span> },
    { header: "Status", cell: (t) => {
      const s = taskStatus(t.status, t.dueOn, today);
      return <span className={`badge ${s.tone}`}>{s.label}</span>;
    } },
  ];
  return (
    <div data-testid="coaching-tasks">
      <DataTable caption="Coaching tasks, newest first" columns={columns} rows={rows} rowKey={(t) => t.id} />
    </div>
  );
}
