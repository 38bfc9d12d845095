// An instrument's items as radio groups over their scales, in one fieldset per competency. Used to record an
// observation and to score a calibration reference.
import {
  groupByCompetency,
  itemField,
  scaleChoices,
  type FieldKey,
  type FormInstrument,
  type Scores,
} from "../charts/observationForm";

/** The id of an item's first radio: what an error summary links to. */
export const itemInputId = (prefix: string, key: string, scaleMin: number) => `${prefix}-${key}-${scaleMin}`;

export function ScoreItems({ prefix, instrument, scores, onScore, errors, disabled }: {
  prefix: string;
  instrument: FormInstrument;
  scores: Scores;
  onScore: (key: string, value: number) => void;
  errors: Partial<Record<FieldKey, string>>;
  disabled?: boolean;
}) {
  return (
    <>
      {groupByCompetency(instrument).map((group, g) => (
        <fieldset key={group.competency} className="competency">
          <legend>{group.competency}</legend>
          {group.items.map((item) => {
            const base = `${prefix}-${item.key}`;
            const error = errors[itemField(item.key)];
            const described = [item.critical ? `${base}-hint` : "", error ? `${base}-error` : ""].filter(Boolean);
            return (
              <fieldset
                key={item.key}
                className="item"
                role="radiogroup"
                aria-labelledby={`${base}-legend`}
                aria-describedby={described.join(" ") || undefined}
                aria-invalid={error ? true : undefined}
                aria-required={item.required || undefined}
                data-item={item.key}
                data-competency-index={g}
              >
                <legend id={`${base}-legend`}>
                  {item.label}
                  {item.critical && <> <span className="badge bad">Critical</span></>}
                  {!item.required && <span className="muted"> (optional)</span>}
                </legend>
                {item.critical && (
                  <p id={`${base}-hint`} className="hint">
                    A score below {item.criticalMin} fails the observation, whatever the total.
                  </p>
                )}
                <div className="scale">
                  {scaleChoices(item).map((c) => (
                    <label key={c.value} className="choice" htmlFor={`${base}-${c.value}`}>
                      <input
                        type="radio"
                        id={`${base}-${c.value}`}
                        name={base}
                        value={c.value}
                        checked={scores[item.key] === c.value}
                        onChange={() => onScore(item.key, c.value)}
                        disabled={disabled}
                      />
                      {c.label}
                    </label>
                  ))}
                </div>
                {error && <p id={`${base}-error`} className="field-error">{error}</p>}
              </fieldset>
            );
          })}
        </fieldset>
      ))}
    </>
  );
}
