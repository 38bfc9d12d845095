// A coach's or supervisor's follow-up task for a practitioner: a title and a due date, retry-safe.
import { useId, useState, type FormEvent } from "react";
import { useMutation } from "urql";
import { graphql } from "../gql";
import { addDays } from "../charts/practitionerStatus";
import { fieldMessage, toProblem, unplaced } from "../lib/errors";

const OpenFollowUp = graphql(`
  mutation OpenFollowUp($practitionerId: ID!, $dueOn: Date!, $title: String!, $idempotencyKey: String) {
    openFollowUp(practitionerId: $practitionerId, dueOn: $dueOn, title: $title, idempotencyKey: $idempotencyKey) {
      id
      practitionerId
      kind
      title
      status
      dueOn
      observationId
    }
  }
`);

function today(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function newKey(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export function FollowUpForm({ practitionerId, practitionerName, onOpened }: {
  practitionerId: string;
  practitionerName: string;
  onOpened: () => void;
}) {
  const ids = useId();
  const [title, setTitle] = useState("");
  const [dueOn, setDueOn] = useState(() => addDays(today(), 7));
  // One key per task being written: a retry after a lost answer is the same task, not a second one.
  const [key, setKey] = useState(newKey);
  const [opened, setOpened] = useState<string | null>(null);
  const [result, open] = useMutation(OpenFollowUp);
  const problem = toProblem(result.error);
  // The mutation's arguments are the body's fields, so the server names them by argument (`dueOn`).
  const titleError = fieldMessage(problem, "title");
  const dueError = fieldMessage(problem, "dueOn");
  const placed = (p: string) => p === "title" || p === "dueOn";
  const rest = unplaced(problem, placed);
  const summary = problem && (rest.length > 0 || (!titleError && !dueError)) ? problem.message : null;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setOpened(null);
    const r = await open({ practitionerId, dueOn, title: title.trim(), idempotencyKey: key });
    if (r.data?.openFollowUp) {
      setOpened(r.data.openFollowUp.title);
      setTitle("");
      setKey(newKey());
      onOpened();
    }
  }

  return (
    <form onSubmit={submit} aria-labelledby={`${ids}-h`} className="follow-up" noValidate>
      <h3 id={`${ids}-h`}>Open a follow-up task for {practitionerName}</h3>
      <div className="field">
        <label htmlFor={`${ids}-title`}>What to follow up</label>
        <input id={`${ids}-title`} value={title} required maxLength={200}
               aria-invalid={titleError ? true : undefined}
               aria-describedby={titleError ? `${ids}-title-err` : undefined}
               onChange={(e) => { setTitle(e.target.value); setKey(newKey()); }} />
        {titleError && <p id={`${ids}-title-err`} className="field-error" role="alert">{titleError}</p>}
      </div>
      <div className="field">
        <label htmlFor={`${ids}-due`}>Due on</label>
        <input id={`${ids}-due`} type="date" value={dueOn} required
               aria-invalid={dueError ? true : undefined}
               aria-describedby={dueError ? `${ids}-due-err` : undefined}
               onChange={(e) => { setDueOn(e.target.value); setKey(newKey()); }} />
        {dueError && <p id={`${ids}-due-err`} className="field-error" role="alert">{dueError}</p>}
      </div>
      {summary && (
        <div className="state error" role="alert">
          {summary}
          {rest.length > 0 && <ul>{rest.map((f, i) => <li key={i}>{f.message}</li>)}</ul>}
        </div>
      )}
      {opened && <p className="state ok" role="status">Follow-up task opened: {opened}</p>}
      <button type="submit" className="primary" disabled={result.fetching || title.trim() === ""}>
        {result.fetching ? "Opening…" : "Open follow-up task"}
      </button>
    </form>
  );
}
