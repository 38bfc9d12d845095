// The way to calibrate: score a reference observation blind, then see the agreement with its master coding.
import { useEffect, useRef, useState } from "react";
import { useMutation, useQuery, type CombinedError } from "urql";
import { graphql } from "../gql";
import {
  fieldForPath,
  fingerprint,
  itemField,
  keyFor,
  runningTotal,
  scoreList,
  type FieldKey,
  type FormInstrument,
  type KeyState,
  type Scores,
} from "../charts/observationForm";
import { toProblem } from "../lib/errors";
import { ScoreItems, itemInputId } from "./ScoreItems";
import { ErrorSummary, type SummaryError } from "./ErrorSummary";
import { DataTable } from "./DataTable";
import { Empty, ErrorBox, Loading } from "./States";

const ReferencesQuery = graphql(`
  query CalibrationReferences {
    calibrationReferences {
      id
      instrumentId
      title
      referenceRater
    }
  }
`);

const CalibrateMutation = graphql(`
  mutation Calibrate($referenceId: ID!, $scores: [ItemScoreInput!]!, $idempotencyKey: String) {
    calibrate(referenceId: $referenceId, scores: $scores, idempotencyKey: $idempotencyKey) {
      id
      agreement
      totalDifference
      itemsCompared
      mismatched
      calibrated
      calibratedOn
      referenceScores {
        item
        score
      }
    }
  }
`);

export interface CalibrationInstrument extends FormInstrument {
  id: string;
  name: string;
  version: number;
}

/** Seconds the service asks to wait (429 calibration-cooldown), if this error is its cooldown. */
function cooldownSeconds(error: CombinedError | undefined): number | null {
  const e = error?.graphQLErrors.find((g) => (g.extensions as { status?: number } | undefined)?.status === 429);
  if (!e) return null;
  const m = /(\d+)\s*s\b/.exec(e.message);
  return m ? Number(m[1]) : 60;
}

export function CalibrationPanel({ instrument, onCalibrated }: {
  instrument: CalibrationInstrument;
  onCalibrated: () => void;
}) {
  const [refs] = useQuery({ query: ReferencesQuery });
  const [chosen, setChosen] = useState<string | null>(null);
  const [scores, setScores] = useState<Scores>({});
  const [sent, setSent] = useState<{ item: string }[]>([]);
  const [state, calibrate] = useMutation(CalibrateMutation);
  const [error, setError] = useState<CombinedError | undefined>();
  const [clientErrors, setClientErrors] = useState<SummaryError[]>([]);
  const [attempt, setAttempt] = useState(0);
  const [waitUntil, setWaitUntil] = useState<number | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const key = useRef<KeyState | null>(null);
  const result = state.data?.calibrate;

  useEffect(() => {
    if (waitUntil === null) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [waitUntil]);
  const coolingDown = waitUntil !== null && now < waitUntil;

  const mine = (refs.data?.calibrationReferences ?? []).filter((r) => r.instrumentId === instrument.id);
  const prefix = "cal";
  const problem = toProblem(error);
  const fieldErrors: Partial<Record<FieldKey, string>> = {};
  const summary: SummaryError[] = [...clientErrors];
  for (const f of problem?.fields ?? []) {
    const field = fieldForPath(f.path, sent, "");
    const item = field?.startsWith("item:") ? instrument.items.find((i) => itemField(i.key) === field) : undefined;
    if (item) fieldErrors[itemField(item.key)] = f.message;
    summary.push({ message: item ? `${item.label}: ${f.message}` : f.message,
                   target: item ? itemInputId(prefix, item.key, item.scaleMin) : undefined });
  }
  for (const c of clientErrors) {
    const item = instrument.items.find((i) => c.target === itemInputId(prefix, i.key, i.scaleMin));
    if (item) fieldErrors[itemField(item.key)] = "Score this item.";
  }

  const submit = async (ev: React.FormEvent) => {
    ev.preventDefault();
    if (!chosen || state.fetching || coolingDown) return;
    setAttempt((n) => n + 1);
    const missing = runningTotal(instrument, scores).missingRequired;
    if (missing.length) {
      setError(undefined);
      setClientErrors(instrument.items.filter((i) => missing.includes(i.key)).map((i) => ({
        message: `${i.label}: score this item.`, target: itemInputId(prefix, i.key, i.scaleMin) })));
      return;
    }
    setClientErrors([]);
    const list = scoreList(instrument, scores);
    key.current = keyFor(key.current, fingerprint({ chosen, list }), () => crypto.randomUUID());
    setSent(list);
    const r = await calibrate({ referenceId: chosen, scores: list, idempotencyKey: key.current.key });
    setError(r.error);
    const wait = cooldownSeconds(r.error);
    if (wait !== null) setWaitUntil(Date.now() + wait * 1000);
    if (r.data?.calibrate) {
      key.current = null;
      onCalibrated();
    }
  };

  if (refs.fetching && !refs.data) return <Loading what="calibration references" />;
  if (refs.error && !refs.data) return <ErrorBox error={refs.error} />;

  return (
    <div className="calibration" data-testid="calibration">
      <h3>Calibrate on a reference observation</h3>
      <p className="hint">
        Watch the reference session, score it here without looking at anyone's coding, and Trellis compares
        your scores with the master coding. You see the master coding only after you score, so each reference
        counts once.
      </p>
      {mine.length === 0 ? (
        <Empty>No reference observations for {instrument.name} yet; ask your implementation partner for one.</Empty>
      ) : (
        <form onSubmit={submit} noValidate aria-label="Score a calibration reference">
          <ErrorSummary title="The calibration was not recorded" errors={summary} attempt={attempt}
                        message={problem && summary.length === 0 ? problem.message : undefined} />
          <fieldset>
            <legend>Reference</legend>
            {mine.map((r) => (
              <label key={r.id} className="choice wide" htmlFor={`ref-${r.id}`}>
                <input type="radio" id={`ref-${r.id}`} name="reference" value={r.id} checked={chosen === r.id}
                       onChange={() => setChosen(r.id)} />
                {r.title} <span className="muted">coded by {r.referenceRater}</span>
              </label>
            ))}
          </fieldset>
          {chosen && (
            <>
              <ScoreItems prefix={prefix} instrument={instrument} scores={scores} errors={fieldErrors}
                          onScore={(k, v) => setScores((s) => ({ ...s, [k]: v }))} />
              <button type="submit" className="primary" disabled={state.fetching || coolingDown}>
                {state.fetching ? "Comparing…" : "Submit my scores"}
              </button>
              {coolingDown && (
                <p className="hint" role="status">
                  You can calibrate again in {Math.ceil(((waitUntil ?? now) - now) / 1000)} s.
                </p>
              )}
            </>
          )}
        </form>
      )}
      {result && (
        <div className={`state ${result.calibrated ? "ok" : "error"}`} role="status" data-testid="calibration-result">
          <p>
            <strong>{result.agreement}% agreement</strong> with the master coding on {result.itemsCompared} items
            (your total {result.totalDifference >= 0 ? "+" : ""}{result.totalDifference} points against it).{" "}
            {result.calibrated ? "You are now calibrated." : "That is not enough to be calibrated; calibrate again on another reference."}
          </p>
          <DataTable
            caption="Your scores against the master coding"
            columns={[
              { header: "Item", cell: (r: { key: string; label: string }) => r.label },
              { header: "Yours", numeric: true, cell: (r) => String(scores[r.key] ?? "—") },
              { header: "Reference", numeric: true,
                cell: (r) => String(result.referenceScores.find((s) => s.item === r.key)?.score ?? "—") },
              { header: "Match", cell: (r) => (result.mismatched.includes(r.key) ? "Differs" : "Same") },
            ]}
            rows={instrument.items.map((i) => ({ key: i.key, label: i.label }))}
            rowKey={(r) => r.key}
          />
        </div>
      )}
    </div>
  );
}
