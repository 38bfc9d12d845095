// Record an observation (observers): a form generated from the active instrument, the observer's calibration
// status (and the way to calibrate), server errors on their fields, a retry-safe submit, and the observer's
// recent observations, live.
import { useEffect, useMemo, useRef, useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, type CombinedError } from "urql";
import { graphql } from "../gql";
import type { ObservationInstrumentsQuery } from "../gql/graphql";
import {
  SETTINGS,
  fingerprint,
  humanize,
  itemField,
  keyFor,
  kindsFor,
  localDate,
  placeErrors,
  runningTotal,
  scoreList,
  type FieldKey,
  type KeyState,
  type Scores,
} from "../charts/observationForm";
import { toProblem } from "../lib/errors";
import { useLiveEvents } from "../lib/live";
import { useSession } from "../lib/session";
import { ScoreItems, itemInputId } from "../components/ScoreItems";
import { ErrorSummary, type SummaryError } from "../components/ErrorSummary";
import { CalibrationPanel } from "../components/CalibrationPanel";
import { DataTable } from "../components/DataTable";
import { Empty, ErrorBox, Loading } from "../components/States";
import "./RecordObservation.css";

const InstrumentsQuery = graphql(`
  query ObservationInstruments {
    instruments(status: "active", kind: "practice_observation") {
      id
      family
      kind
      name
      version
      passThreshold
      competencies
      items {
        key
        label
        competency
        scaleMin
        scaleMax
        critical
        criticalMin
        required
        weight
      }
    }
  }
`);

const PractitionersQuery = graphql(`
  query ObserverPractitioners($agency: ID!) {
    agency(id: $agency) {
      id
      staff(status: "active", role: "practitioner") {
        id
        name
      }
    }
  }
`);

const RaterStatusQuery = graphql(`
  query ObserverRaterStatus($rater: ID!, $family: String!) {
    raterStatus(raterId: $rater, family: $family) {
      calibrated
      reason
      validUntil
    }
  }
`);

// The service filters by observer and returns the newest first: one small page, whatever the roster's size.
const RecentQuery = graphql(`
  query ObserverRecentObservations($observerId: ID!, $first: Int!) {
    observations(observerId: $observerId, first: $first) {
      id
      practitionerId
      observedOn
      setting
      score
      passed
    }
  }
`);

const RecordMutation = graphql(`
  mutation RecordObservation($input: RecordObservationInput!) {
    recordObservation(input: $input) {
      id
      practitionerId
      observedOn
      score
      passed
      competencyScores
    }
  }
`);

const RECENT = 10;
const FIELD_IDS: Record<string, string> = {
  practitionerId: "obs-practitioner",
  observedOn: "obs-date",
  setting: "obs-setting",
  kind: "obs-kind",
  notes: "obs-notes",
};
const FIELD_LABELS: Record<string, string> = {
  practitionerId: "Practitioner",
  observedOn: "Observed on",
  setting: "Setting",
  kind: "Kind",
  notes: "Notes",
  scores: "Scores",
};

export function RecordObservation() {
  const { claims } = useSession();
  const [instruments] = useQuery({ query: InstrumentsQuery });
  const [people] = useQuery({ query: PractitionersQuery, variables: { agency: claims.agency } });
  const [instrumentId, setInstrumentId] = useState<string | null>(null);
  const active = instruments.data?.instruments ?? [];
  const instrument = active.find((i) => i.id === instrumentId) ?? active[0];

  const [status, refetchStatus] = useQuery({
    query: RaterStatusQuery,
    variables: { rater: claims.sub, family: instrument?.family ?? "" },
    pause: !instrument,
  });
  const [calibratedHere, setCalibratedHere] = useState(false);

  const practitioners = useMemo(
    () => [...(people.data?.agency?.staff ?? [])].filter((p) => p.id !== claims.sub).sort((a, b) => a.name.localeCompare(b.name)),
    [people.data, claims.sub],
  );
  const names = useMemo(() => new Map(practitioners.map((p) => [p.id, p.name])), [practitioners]);

  if (instruments.fetching && !instruments.data) return <Page><Loading what="the instrument" /></Page>;
  if (instruments.error && !instruments.data) return <Page><ErrorBox error={instruments.error} /></Page>;
  if (!instrument) return <Page><Empty>There is no active observation instrument yet.</Empty></Page>;

  const rater = status.data?.raterStatus;
  return (
    <Page>
      {active.length > 1 && (
        <div className="field narrow">
          <label htmlFor="obs-instrument">Instrument</label>
          <select id="obs-instrument" value={instrument.id} onChange={(e) => setInstrumentId(e.target.value)}>
            {active.map((i) => <option key={i.id} value={i.id}>{i.name} (version {i.version})</option>)}
          </select>
        </div>
      )}
      <section className="card" aria-labelledby="cal-heading">
        <h2 id="cal-heading">Your calibration</h2>
        {status.fetching && !status.data ? (
          <Loading what="your calibration" />
        ) : status.error && !status.data ? (
          <ErrorBox error={status.error} />
        ) : rater ? (
          <div data-testid="rater-status">
            {rater.calibrated ? (
              <p>
                <span className="badge good">Calibrated</span> on {instrument.name}
                {rater.validUntil && <> until <strong>{rater.validUntil}</strong></>}. <span className="muted">({rater.reason})</span>
              </p>
            ) : (
              <p>
                <span className="badge bad">Not calibrated</span> on {instrument.name}: {rater.reason}.
                {" "}You can record observations once you are calibrated.
              </p>
            )}
            {(!rater.calibrated || calibratedHere) && (
              <CalibrationPanel
                instrument={instrument}
                onCalibrated={() => {
                  setCalibratedHere(true);
                  refetchStatus({ requestPolicy: "network-only" });
                }}
              />
            )}
          </div>
        ) : null}
      </section>

      {rater?.calibrated && (
        <ObservationForm
          instrument={instrument}
          practitioners={practitioners}
          peopleFetching={people.fetching && !people.data}
          peopleError={people.error}
        />
      )}

      <RecentObservations observer={claims.sub} agency={claims.agency} names={names} />
    </Page>
  );
}

function Page({ children }: { children: React.ReactNode }) {
  return (
    <section className="observe">
      <h1>Record an observation</h1>
      {children}
    </section>
  );
}

type Instrument = ObservationInstrumentsQuery["instruments"][number];

interface Recorded {
  id: string;
  practitionerId: string;
  score: number;
  passed: boolean;
  observedOn: string;
}

function ObservationForm({ instrument, practitioners, peopleFetching, peopleError }: {
  instrument: Instrument;
  practitioners: { id: string; name: string }[];
  peopleFetching: boolean;
  peopleError?: CombinedError;
}) {
  const kinds = kindsFor(instrument.kind);
  const [practitionerId, setPractitionerId] = useState("");
  const [observedOn, setObservedOn] = useState(localDate());
  const [setting, setSetting] = useState<string>(SETTINGS[0]);
  const [kind, setKind] = useState(kinds[0]);
  const [notes, setNotes] = useState("");
  const [scores, setScores] = useState<Scores>({});
  const [errors, setErrors] = useState<Partial<Record<FieldKey, string>>>({});
  const [summary, setSummary] = useState<SummaryError[]>([]);
  const [summaryMessage, setSummaryMessage] = useState<string | undefined>();
  const [attempt, setAttempt] = useState(0);
  const [recorded, setRecorded] = useState<Recorded | null>(null);
  const [state, record] = useMutation(RecordMutation);
  const key = useRef<KeyState | null>(null);
  const confirmation = useRef<HTMLDivElement>(null);
  // The confirmation is at the top of a long form: bring it (and focus) there once recorded.
  useEffect(() => {
    if (!recorded) return;
    confirmation.current?.focus();
    confirmation.current?.scrollIntoView?.({ block: "start" });
  }, [recorded]);
  const prefix = "obs";
  const total = runningTotal(instrument, scores);
  const names = new Map(practitioners.map((p) => [p.id, p.name]));

  const targetOf = (field: FieldKey): string | undefined => {
    if (field.startsWith("item:")) {
      const item = instrument.items.find((i) => itemField(i.key) === field);
      return item ? itemInputId(prefix, item.key, item.scaleMin) : undefined;
    }
    return FIELD_IDS[field];
  };
  const labelOf = (field: FieldKey): string => {
    const item = field.startsWith("item:") ? instrument.items.find((i) => itemField(i.key) === field) : undefined;
    return item ? item.label : FIELD_LABELS[field] ?? field;
  };
  const clear = (field: FieldKey) => setErrors((e) => (e[field] ? { ...e, [field]: undefined } : e));
  const show = (placed: { field: FieldKey | null; message: string }[], message?: string) => {
    const byField: Partial<Record<FieldKey, string>> = {};
    for (const p of placed) if (p.field) byField[p.field] = byField[p.field] ? `${byField[p.field]} ${p.message}` : p.message;
    setErrors(byField);
    setSummary(placed.map((p) => ({
      message: p.field ? `${labelOf(p.field)}: ${p.message}` : p.message,
      target: p.field ? targetOf(p.field) : undefined,
    })));
    setSummaryMessage(message);
  };

  const submit = async (ev: React.FormEvent) => {
    ev.preventDefault();
    if (state.fetching) return;
    setAttempt((n) => n + 1);
    // What the browser can tell before asking: a practitioner and every required item.
    const missing: { field: FieldKey; message: string }[] = [];
    if (!practitionerId) missing.push({ field: "practitionerId", message: "Choose the practitioner you observed." });
    if (!observedOn) missing.push({ field: "observedOn", message: "Give the date of the observation." });
    for (const k of total.missingRequired) missing.push({ field: itemField(k), message: "Score this item." });
    if (missing.length) {
      show(missing);
      return;
    }
    const list = scoreList(instrument, scores);
    const content = { practitionerId, instrumentId: instrument.id, observedOn, setting, kind, notes, scores: list };
    // The same content keeps its key (a retry after a lost answer records nothing twice); changed content or a
    // recorded observation gets a new one.
    key.current = keyFor(key.current, fingerprint(content), () => crypto.randomUUID());
    const r = await record({ input: { ...content, idempotencyKey: key.current.key } });
    const got = r.data?.recordObservation;
    if (got) {
      key.current = null;
      show([]);
      setRecorded({ id: got.id, practitionerId: got.practitionerId, score: got.score, passed: got.passed,
                    observedOn: got.observedOn });
      setScores({});
      setNotes("");
      return;
    }
    const problem = toProblem(r.error);
    const fieldSet = new Set<FieldKey>([...Object.keys(FIELD_IDS), ...instrument.items.map((i) => itemField(i.key))]);
    const placed = placeErrors(problem?.fields ?? [], list, fieldSet);
    show(placed, placed.length === 0 ? problem?.message : undefined);
  };

  const describe = (field: string, hint?: string) => {
    const ids = [hint, errors[field] ? `${FIELD_IDS[field]}-error` : undefined].filter(Boolean);
    return { "aria-invalid": errors[field] ? true : undefined, "aria-describedby": ids.join(" ") || undefined };
  };
  const fieldError = (field: string) =>
    errors[field] ? <p id={`${FIELD_IDS[field]}-error`} className="field-error">{errors[field]}</p> : null;

  return (
    <section className="card" aria-labelledby="form-heading">
      <h2 id="form-heading">{instrument.name} <span className="muted">version {instrument.version}</span></h2>
      {recorded && (
        <div className="state ok" role="status" data-testid="confirmation" tabIndex={-1} ref={confirmation}>
          <p>
            <strong>Observation recorded:</strong> {recorded.score}% —{" "}
            <span className={`badge ${recorded.passed ? "good" : "bad"}`}>{recorded.passed ? "passed" : "did not pass"}</span>
            {" "}for {names.get(recorded.practitionerId) ?? "the practitioner"} on {recorded.observedOn}.
          </p>
          <p>
            <Link to={`/practitioners/${recorded.practitionerId}`}>
              See {names.get(recorded.practitionerId) ?? "the practitioner"}'s practice
            </Link>
          </p>
        </div>
      )}
      <form onSubmit={submit} noValidate aria-labelledby="form-heading">
        <ErrorSummary title="The observation was not recorded" errors={summary} message={summaryMessage}
                      attempt={attempt} />
        <div className="grid two">
          <div className="field">
            <label htmlFor="obs-practitioner">Practitioner</label>
            {peopleError && !peopleFetching && practitioners.length === 0 && <ErrorBox error={peopleError} />}
            <select id="obs-practitioner" value={practitionerId} disabled={peopleFetching}
                    onChange={(e) => { setPractitionerId(e.target.value); clear("practitionerId"); }}
                    {...describe("practitionerId")}>
              <option value="">{peopleFetching ? "Loading the roster…" : practitioners.length ? "Choose a practitioner" : "No practitioners on your roster"}</option>
              {practitioners.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
            </select>
            {fieldError("practitionerId")}
          </div>
          <div className="field">
            <label htmlFor="obs-date">Observed on</label>
            <input id="obs-date" type="date" value={observedOn} max={localDate()}
                   onChange={(e) => { setObservedOn(e.target.value); clear("observedOn"); }}
                   {...describe("observedOn", "obs-date-hint")} />
            <p id="obs-date-hint" className="hint">The day of the session; not in the future.</p>
            {fieldError("observedOn")}
          </div>
          <div className="field">
            <label htmlFor="obs-setting">Setting</label>
            <select id="obs-setting" value={setting} onChange={(e) => { setSetting(e.target.value); clear("setting"); }}
                    {...describe("setting")}>
              {SETTINGS.map((s) => <option key={s} value={s}>{humanize(s)}</option>)}
            </select>
            {fieldError("setting")}
          </div>
          <div className="field">
            <label htmlFor="obs-kind">Kind</label>
            <select id="obs-kind" value={kind} onChange={(e) => { setKind(e.target.value); clear("kind"); }}
                    {...describe("kind")}>
              {kinds.map((k) => <option key={k} value={k}>{humanize(k)}</option>)}
            </select>
            {fieldError("kind")}
          </div>
        </div>

        <p className="hint">
          Score each item on its scale. Items marked <span className="badge bad">Critical</span> fail the
          observation when scored below their minimum. Passing needs {instrument.passThreshold}%.
        </p>
        <ScoreItems prefix={prefix} instrument={instrument} scores={scores} errors={errors}
                    onScore={(k, v) => { setScores((s) => ({ ...s, [k]: v })); clear(itemField(k)); }} />

        <div className="field">
          <label htmlFor="obs-notes">Notes <span className="muted">(optional)</span></label>
          <textarea id="obs-notes" rows={4} value={notes} maxLength={10000}
                    onChange={(e) => { setNotes(e.target.value); clear("notes"); }} {...describe("notes")} />
          {fieldError("notes")}
        </div>

        <RunningTotalBox total={total} />

        <button type="submit" className="primary" disabled={state.fetching}>
          {state.fetching ? "Recording…" : "Record observation"}
        </button>
      </form>
    </section>
  );
}

function RunningTotalBox({ total }: { total: ReturnType<typeof runningTotal> }) {
  const verdict = total.total === null
    ? { cls: "", text: "Nothing scored yet" }
    : total.criticalBelowMin.length
      ? { cls: "bad", text: "A critical item is below its minimum: this would not pass" }
      : total.passing
        ? { cls: "good", text: "At or above the pass line" }
        : { cls: "warn", text: "Below the pass line" };
  const width = total.total ?? 0;
  return (
    <div className="running" data-testid="running-total">
      <p role="status" aria-live="polite">
        Running total: <strong data-testid="running-total-value">{total.total === null ? "—" : `${total.total}%`}</strong>
        {" "}against the {total.passThreshold}% pass line ({total.scored} of {total.items} items scored).{" "}
        {verdict.cls ? <span className={`badge ${verdict.cls}`}>{verdict.text}</span> : <span className="muted">{verdict.text}</span>}
      </p>
      <div className="bar" aria-hidden="true">
        <div className={`fill ${verdict.cls}`} style={{ width: `${width}%` }} />
        <div className="line" style={{ left: `${total.passThreshold}%` }} />
      </div>
    </div>
  );
}

function RecentObservations({ observer, agency, names }: {
  observer: string;
  agency: string;
  names: Map<string, string>;
}) {
  const [recent, refetch] = useQuery({ query: RecentQuery, variables: { observerId: observer, first: RECENT } });
  const live = useLiveEvents(agency, ["ObservationRecorded"], () => refetch({ requestPolicy: "network-only" }));
  const rows = recent.data?.observations ?? [];
  return (
    <section className="card" aria-labelledby="recent-heading">
      <h2 id="recent-heading">Recent observations I recorded</h2>
      <p className="live" aria-live="polite">{live ? "Live: updated just now" : ""}</p>
      {recent.fetching && !recent.data ? (
        <Loading what="your recent observations" />
      ) : recent.error && !recent.data ? (
        <ErrorBox error={recent.error} />
      ) : rows.length === 0 ? (
        <Empty>You have not recorded an observation yet.</Empty>
      ) : (
        <div data-testid="recent-observations">
          <DataTable
            caption={`Your last ${rows.length} observations, newest first`}
            columns={[
              { header: "Observed on", cell: (o) => o.observedOn },
              { header: "Practitioner",
                cell: (o) => <Link to={`/practitioners/${o.practitionerId}`}>{names.get(o.practitionerId) ?? "Practitioner"}</Link> },
              { header: "Setting", cell: (o) => humanize(o.setting) },
              { header: "Score", numeric: true, cell: (o) => `${o.score}%` },
              { header: "Result", cell: (o) => (o.passed ? "Passed" : "Did not pass") },
            ]}
            rows={rows}
            rowKey={(o) => o.id}
          />
        </div>
      )}
    </section>
  );
}
