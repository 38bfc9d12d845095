// The errors of a form submit at its top, each linking to its field (the GOV.UK error summary pattern).
import { useEffect, useRef } from "react";

export interface SummaryError {
  message: string;
  /** The id of the field to move to; none for errors that belong to no field. */
  target?: string;
}

/** `attempt` counts submits: focus moves to the summary after each failed submit, never while someone types. */
export function ErrorSummary({ title, errors, message, attempt }: {
  title: string;
  errors: SummaryError[];
  message?: string;
  attempt: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const content = JSON.stringify([errors, message]);
  // Move focus to the summary when a submit fails, so keyboard and screen-reader users meet it first.
  useEffect(() => {
    box.current?.focus();
  }, [attempt, content]);
  if (errors.length === 0 && !message) return null;
  return (
    <div className="state error error-summary" role="alert" tabIndex={-1} ref={box} data-testid="error-summary">
      <h2>{title}</h2>
      {message && <p>{message}</p>}
      {errors.length > 0 && (
        <ul>
          {errors.map((e, i) => (
            <li key={i}>
              {e.target ? (
                <a
                  href={`#${e.target}`}
                  onClick={(ev) => {
                    ev.preventDefault();
                    const el = document.getElementById(e.target!);
                    el?.focus();
                    el?.scrollIntoView({ block: "center" });
                  }}
                >
                  {e.message}
                </a>
              ) : (
                e.message
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
