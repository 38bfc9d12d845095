// The roster: agency admins import staff from CSV, previewing first (a dry run that does every check), and
// see the roster update live as people join. Every row must be valid, or nothing is written.
import { useCallback, useEffect, useMemo, useRef, useState, type ChangeEvent, type FormEvent } from "react";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { RosterQuery } from "../gql/graphql";
import { DataTable, type Column } from "../components/DataTable";
import { Empty, ErrorBox, Loading } from "../components/States";
import { toProblem, type Problem } from "../lib/errors";
import { useLiveEvents } from "../lib/live";
import { can, useSession } from "../lib/session";
import {
  groupRowErrors, importSummary, nothingToImport, ROSTER_COLUMNS, rowErrorsFrom, sortStaff,
  type ImportFigures, type RowErrorGroup,
} from "../charts/roster";

const RosterQueryDoc = graphql(`
  query Roster($agencyId: ID!) {
    agency(id: $agencyId) {
      id
      name
      teams {
        id
        name
      }
      staff {
        id
        name
        email
        teamId
        roles
        hireDate
        status
        leftOn
      }
    }
  }
`);

const ImportMutation = graphql(`
  mutation ImportRoster($agencyId: ID!, $csv: String!, $dryRun: Boolean!, $idempotencyKey: String) {
    importRoster(agencyId: $agencyId, csv: $csv, dryRun: $dryRun, idempotencyKey: $idempotencyKey) {
      dryRun
      rows
      created
      updated
      unchanged
    }
  }
`);

type Staff = NonNullable<RosterQuery["agency"]>["staff"][number];

const EXAMPLE = "name,email,roles,team,hire_date\nAda Lovelace,ada@example.org,practitioner,North,2026-01-15\n" +
  "Sam Ortiz,sam@example.org,coach;supervisor,,\n";
const ROSTER_EVENTS = ["StaffMemberJoined", "StaffMemberLeft", "StaffRoleChanged"];

export function Roster() {
  const { claims } = useSession();
  if (!can.manageRoster(claims.roles)) {
    return (
      <section>
        <h1>Roster</h1>
        <p className="state empty" role="status" data-testid="roster-not-allowed">
          You cannot manage the roster: importing staff is for your agency&apos;s admins. Ask one of them to add
          or change people.
        </p>
      </section>
    );
  }
  return <RosterAdmin agencyId={claims.agency} />;
}

function RosterAdmin({ agencyId }: { agencyId: string }) {
  const [result, reexecute] = useQuery({ query: RosterQueryDoc, variables: { agencyId } });
  // An import of many rows sends one event per person: refetch once they have settled.
  const timer = useRef<number | undefined>(undefined);
  const refetch = useCallback(() => {
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => reexecute({ requestPolicy: "network-only" }), 300);
  }, [reexecute]);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  const live = useLiveEvents(agencyId, ROSTER_EVENTS, refetch);

  const agency = result.data?.agency;
  const notFound = toProblem(result.error)?.code === "NOT_FOUND";
  return (
    <section aria-labelledby="roster-title">
      <h1 id="roster-title">Roster{agency ? ` \u2014 ${agency.name}` : ""}</h1>
      <p className="live" aria-live="polite">
        {live ? `Live: updated at ${new Date(live.time).toLocaleTimeString()}` : ""}
      </p>
      {notFound ? (
        <Empty>Your agency is not registered in Trellis yet, so it has no roster to manage.</Empty>
      ) : (
        <div className="grid">
          <ImportCard agencyId={agencyId} onImported={refetch} />
          <StaffCard result={result} />
        </div>
      )}
    </section>
  );
}

function ImportCard({ agencyId, onImported }: { agencyId: string; onImported: () => void }) {
  const [csv, setCsv] = useState("");
  const [fileNote, setFileNote] = useState<string | null>(null);
  const [preview, setPreview] = useState<ImportFigures | null>(null);
  const [imported, setImported] = useState<ImportFigures | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [rowErrors, setRowErrors] = useState<RowErrorGroup[]>([]);
  const [state, run] = useMutation(ImportMutation);
  const [busy, setBusy] = useState<"preview" | "import" | null>(null);
  // One key per previewed file: clicking Import again after a lost answer imports it once.
  const importKey = useRef<string>(newKey());

  const reset = () => {
    setPreview(null);
    setImported(null);
    setProblem(null);
    setRowErrors([]);
    importKey.current = newKey();
  };

  const onText = (e: ChangeEvent<HTMLTextAreaElement>) => {
    setCsv(e.target.value);
    setFileNote(null);
    reset();
  };

  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return;
    const text = await file.text();
    setCsv(text);
    setFileNote(`Loaded ${file.name} (${file.size.toLocaleString()} bytes) into the box below.`);
    reset();
  };

  const send = async (dryRun: boolean) => {
    setProblem(null);
    setRowErrors([]);
    setImported(null);
    if (!csv.trim()) {
      setProblem({ message: "Choose a CSV file or paste the roster first.", fields: [] });
      return;
    }
    setBusy(dryRun ? "preview" : "import");
    const r = await run({ agencyId, csv, dryRun, idempotencyKey: dryRun ? null : importKey.current });
    setBusy(null);
    if (r.error) {
      setPreview(null);
      setProblem(toProblem(r.error));
      setRowErrors(groupRowErrors(rowErrorsFrom(r.error.graphQLErrors), csv));
      return;
    }
    const figures = r.data?.importRoster;
    if (!figures) return;
    if (dryRun) setPreview(figures);
    else {
      setPreview(null);
      setImported(figures);
      importKey.current = newKey();
      onImported();
    }
  };

  const onPreview = (e: FormEvent) => {
    e.preventDefault();
    void send(true);
  };

  const errorColumns: Column<RowErrorGroup>[] = [
    { header: "Row", cell: (g) => (g.line > 0 ? g.line : "\u2014"), numeric: true },
    { header: "Problems", cell: (g) => (
      <ul className="plain">
        {g.problems.map((p, i) => <li key={i}>{p.column ? <strong>{p.column}: </strong> : null}{p.message}</li>)}
      </ul>
    ) },
    { header: "Row in the file", cell: (g) => <code style={styles.code}>{g.content}</code> },
  ];

  return (
    <div className="card">
      <h2>Import staff from CSV</h2>
      <p>Every row must be valid, or nothing is imported. Preview first: it checks every row without changing
        anything. People are matched by email, so importing the same file twice changes nothing.</p>
      <details>
        <summary style={styles.summary}>The columns the file needs</summary>
        <p>The first row names the columns; their order does not matter and other columns are ignored.
          At most 5,000 rows.</p>
        <DataTable caption="Roster file columns" rowKey={(c) => c.name} rows={ROSTER_COLUMNS} columns={[
          { header: "Column", cell: (c) => <code>{c.name}</code> },
          { header: "Needed", cell: (c) => (c.required ? "Required" : "Optional") },
          { header: "What it holds", cell: (c) => c.what },
        ]} />
        <p>For example:</p>
        <pre style={styles.pre}>{EXAMPLE}</pre>
      </details>

      <form onSubmit={onPreview} noValidate>
        <div className="field">
          <label htmlFor="roster-file">CSV file</label>
          <input id="roster-file" type="file" accept=".csv,text/csv,text/plain" onChange={(e) => void onFile(e)}
            aria-describedby={fileNote ? "roster-file-note" : undefined} />
          {fileNote && <p id="roster-file-note" className="hint">{fileNote}</p>}
        </div>
        <div className="field">
          <label htmlFor="roster-csv">Or paste the CSV</label>
          <textarea id="roster-csv" rows={8} value={csv} onChange={onText} spellCheck={false}
            aria-invalid={rowErrors.length > 0 ? true : undefined}
            aria-describedby="roster-csv-hint" style={styles.textarea} />
          <p id="roster-csv-hint" className="hint">Columns: name, email, roles (separated by &lsquo;;&rsquo;),
            and optionally team, hire_date (YYYY-MM-DD) and id.</p>
        </div>
        <div style={styles.buttons}>
          <button type="submit" className="secondary" disabled={state.fetching}>
            {busy === "preview" ? "Checking\u2026" : "Preview"}
          </button>
          {preview && !nothingToImport(preview) && (
            <button type="button" className="primary" disabled={state.fetching} onClick={() => void send(false)}>
              {busy === "import" ? "Importing\u2026" : `Import ${preview.created + preview.updated} ` +
                `${preview.created + preview.updated === 1 ? "change" : "changes"}`}
            </button>
          )}
        </div>
      </form>

      {problem && (
        <div className="state error" role="alert" data-testid="import-problem">
          {problem.message}
          {rowErrors.length === 0 && problem.fields.length > 0 && (
            <ul>{problem.fields.map((f, i) => <li key={i}>{f.message}</li>)}</ul>
          )}
        </div>
      )}
      {rowErrors.length > 0 && (
        <div data-testid="row-errors">
          <DataTable caption="Problems in the file, by row (the header is row 1); nothing was imported"
            columns={errorColumns} rows={rowErrors} rowKey={(g) => String(g.line)} />
        </div>
      )}
      {preview && <ImportFiguresView figures={preview} />}
      {imported && (
        <div role="status">
          <ImportFiguresView figures={imported} />
        </div>
      )}
    </div>
  );
}

function ImportFiguresView({ figures }: { figures: ImportFigures }) {
  return (
    <div className={figures.dryRun ? "" : "state ok"} data-testid={figures.dryRun ? "preview" : "imported"}>
      <p><strong>{importSummary(figures)}</strong></p>
      <dl className="figures">
        <div><dt>Rows</dt><dd>{figures.rows}</dd></div>
        <div><dt>New</dt><dd>{figures.created}</dd></div>
        <div><dt>Updated</dt><dd>{figures.updated}</dd></div>
        <div><dt>Unchanged</dt><dd>{figures.unchanged}</dd></div>
      </dl>
      {figures.dryRun && nothingToImport(figures) && <p>Everyone in the file is already on the roster as written.</p>}
    </div>
  );
}

function StaffCard({ result }: { result: ReturnType<typeof useQuery<RosterQuery>>[0] }) {
  const agency = result.data?.agency;
  const teams = useMemo(() => new Map((agency?.teams ?? []).map((t) => [t.id, t.name])), [agency?.teams]);
  const staff = useMemo(() => sortStaff(agency?.staff ?? []), [agency?.staff]);
  const active = staff.filter((s) => s.status === "active").length;
  const columns: Column<Staff>[] = [
    { header: "Name", cell: (s) => s.name },
    { header: "Email", cell: (s) => s.email },
    { header: "Roles", cell: (s) => s.roles.map((r) => r.replace("_", " ")).join(", ") },
    { header: "Team", cell: (s) => (s.teamId ? teams.get(s.teamId) ?? "\u2014" : "\u2014") },
    { header: "Hired", cell: (s) => s.hireDate },
    { header: "Status", cell: (s) => (s.status === "active"
      ? <span className="badge good">active</span>
      : <span className="badge warn">left{s.leftOn ? ` ${s.leftOn}` : ""}</span>) },
  ];
  return (
    <div className="card" data-testid="staff">
      <h2>Staff</h2>
      {result.fetching && !result.data && <Loading what="the roster" />}
      {result.error && !result.data && <ErrorBox error={result.error} />}
      {agency && staff.length === 0 && <Empty>Nobody is on the roster yet. Import a file to add people.</Empty>}
      {agency && staff.length > 0 && (
        <>
          <p>{active} active, {staff.length - active} left.</p>
          <DataTable caption="Everyone on the roster" columns={columns} rows={staff} rowKey={(s) => s.id} />
        </>
      )}
    </div>
  );
}

// Small layout bits this page alone needs.
const styles = {
  code: { whiteSpace: "pre-wrap", wordBreak: "break-all" },
  pre: { overflowX: "auto", background: "var(--bg)", padding: "0.5rem", borderRadius: 4 },
  textarea: { fontFamily: "ui-monospace, monospace", fontSize: "0.9rem" },
  buttons: { display: "flex", flexWrap: "wrap", gap: "0.5rem" },
  summary: { cursor: "pointer", color: "var(--accent)", minHeight: 44, lineHeight: "44px" },
} as const;

function newKey(): string {
  return typeof crypto !== "undefined" && "randomUUID" in crypto
    ? crypto.randomUUID()
    : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
