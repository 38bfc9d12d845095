// The hub's roll call: registrants with check-in, a video platform's participant report imported (file or
// pasted; a dry-run preview first, with matched and unmatched participants and line-numbered errors), and
// attendance adjusted with a required reason. Live through the session's rollCall subscription.
import { useCallback, useEffect, useMemo, useRef, useState, type ChangeEvent, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { useMutation, useQuery, useSubscription } from "urql";
import { graphql } from "../gql";
import type { CommunityImportAttendanceMutation, CommunityRollCallQuery, CommunityRollCallSessionQuery } from "../gql/graphql";
import { Chart } from "../components/Chart";
import { DataTable } from "../components/DataTable";
import { Empty, ErrorBox, Loading } from "../components/States";
import { rowErrorsFrom, groupRowErrors, type RowErrorGroup } from "../charts/roster";
import { toProblem, type Problem } from "../lib/errors";
import { attendanceChart, attendanceSummary, percent, shareLabel, sourceLabel } from "../community/attendance";
import { timeRange } from "../community/time";
import { personLabel } from "../community/seats";
import { Badge, LiveNote } from "../community/ui";

// Who may take the roll call first: the registrations and everyone's attendance are the hub team's only.
const SessionQuery = graphql(`
  query CommunityRollCallSession($id: ID!) {
    community {
      session(id: $id) {
        id
        title
        programTitle
        startsAt
        endsAt
        timezone
        capacity
        isHub
      }
    }
  }
`);

const RollCallQuery = graphql(`
  query CommunityRollCall($id: ID!) {
    community {
      session(id: $id) {
        id
        registrations {
          id
          personId
          personName
          status
          position
          waitlistPosition
        }
        attendance {
          threshold
          items {
            personId
            displayName
            attended
            minutesPresent
            share
            source
            revision
          }
        }
      }
    }
  }
`);

const RollCallLive = graphql(`
  subscription CommunityRollCallLive($sessionId: ID!) {
    rollCall(sessionId: $sessionId) {
      id
      name
    }
  }
`);

const CheckIn = graphql(`
  mutation CommunityCheckIn($sessionId: ID!, $personId: ID!) {
    checkIn(sessionId: $sessionId, personId: $personId) {
      personId
      attended
    }
  }
`);

const ImportAttendance = graphql(`
  mutation CommunityImportAttendance($sessionId: ID!, $csv: String!, $dryRun: Boolean!) {
    importAttendance(sessionId: $sessionId, csv: $csv, dryRun: $dryRun) {
      format
      imported
      dryRun
      matched {
        name
        email
        personId
        minutes
        keptAdjustment
      }
      unmatched {
        name
        email
        minutes
      }
    }
  }
`);

const Adjust = graphql(`
  mutation CommunityAdjustAttendance($sessionId: ID!, $personId: ID!, $attended: Boolean, $reason: String!) {
    adjustAttendance(sessionId: $sessionId, personId: $personId, attended: $attended, reason: $reason) {
      personId
      attended
      source
    }
  }
`);

type Session = NonNullable<CommunityRollCallSessionQuery["community"]["session"]> &
  NonNullable<CommunityRollCallQuery["community"]["session"]>;
type ImportResult = CommunityImportAttendanceMutation["importAttendance"];

export function CommunityRollCall() {
  const { id = "" } = useParams();
  const [basics] = useQuery({ query: SessionQuery, variables: { id } });
  const info = basics.data?.community.session;
  if (basics.fetching && !basics.data) return <Page><Loading what="the session" /></Page>;
  if (basics.error && !basics.data) return <Page><ErrorBox error={basics.error} /></Page>;
  if (!info) return <Page><Empty>This session does not exist or is not open to you.</Empty></Page>;
  if (!info.isHub) {
    return (
      <Page title={info.title} sessionId={info.id}>
        <Empty>The roll call is for the session&apos;s hub team.</Empty>
      </Page>
    );
  }
  return <HubRollCall info={info} />;
}

function HubRollCall({ info }: { info: NonNullable<CommunityRollCallSessionQuery["community"]["session"]> }) {
  const [result, reexecute] = useQuery({ query: RollCallQuery, variables: { id: info.id } });
  const [liveAt, setLiveAt] = useState<Date | null>(null);
  const refresh = useCallback(() => reexecute({ requestPolicy: "network-only" }), [reexecute]);
  // Many events arrive at once after an import: refetch once they have settled.
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  const onLive = useCallback(() => {
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => {
      refresh();
      setLiveAt(new Date());
    }, 200);
  }, [refresh]);
  useSubscription({ query: RollCallLive, variables: { sessionId: info.id } }, (_prev, event) => {
    onLive();
    return event;
  });

  const hub = result.data?.community.session;
  const session: Session | null = hub ? { ...info, ...hub } : null;
  return (
    <Page title={info.title} sessionId={info.id}>
      <p className="muted">{info.programTitle} · {timeRange(info.startsAt, info.endsAt, info.timezone)}</p>
      <LiveNote at={liveAt} />
      {result.fetching && !result.data ? (
        <Loading what="the roll call" />
      ) : result.error && !result.data ? (
        <ErrorBox error={result.error} />
      ) : !session ? (
        <Empty>This session does not exist or is not open to you.</Empty>
      ) : (
        <>
          <Registrants session={session} onChanged={refresh} />
          <Attendance session={session} />
          <div className="grid two">
            <ImportCard sessionId={session.id} onImported={refresh} />
            <AdjustCard session={session} onAdjusted={refresh} />
          </div>
        </>
      )}
    </Page>
  );
}

function Page({ title, sessionId, children }: { title?: string; sessionId?: string; children: React.ReactNode }) {
  return (
    <section className="community" aria-labelledby="rollcall-title">
      <p><Link to={sessionId ? `/community/sessions/${sessionId}` : "/community"}>← The session</Link></p>
      <h1 id="rollcall-title">Roll call{title ? `: ${title}` : ""}</h1>
      {children}
    </section>
  );
}

function Registrants({ session: s, onChanged }: { session: Session; onChanged: () => void }) {
  const [state, checkIn] = useMutation(CheckIn);
  const [pending, setPending] = useState<string | null>(null);
  const present = new Map(s.attendance.items.map((a) => [a.personId, a]));
  const names = new Map(s.attendance.items.map((a) => [a.personId, a.displayName]));
  const regs = s.registrations.filter((r) => r.status === "confirmed" || r.status === "offered");
  return (
    <section className="card" aria-labelledby="registrants-title">
      <h2 id="registrants-title">Registrants</h2>
      {regs.length === 0 ? (
        <Empty>No one holds a seat for this session.</Empty>
      ) : (
        <div data-testid="registrants">
          <DataTable caption="Confirmed registrants and their check-in" rows={regs} rowKey={(r) => r.id} columns={[
            { header: "Person", cell: (r) => personLabel(r, names) },
            { header: "Seat", cell: (r) => r.status },
            { header: "Attendance", cell: (r) => {
              const a = present.get(r.personId);
              return a ? <Badge tone={a.attended ? "good" : "bad"}>{a.attended ? "Present" : "Not counted"}</Badge>
                : <span className="muted">Not recorded</span>;
            } },
            { header: "Check in", cell: (r) => present.get(r.personId)?.attended ? null : (
              <button type="button" className="secondary" disabled={state.fetching}
                onClick={async () => {
                  setPending(r.personId);
                  const res = await checkIn({ sessionId: s.id, personId: r.personId });
                  setPending(null);
                  if (!res.error) onChanged();
                }}>
                {pending === r.personId ? "Checking in…" : "Check in"}
                <span className="visually-hidden"> {personLabel(r, names)}</span>
              </button>
            ) },
          ]} />
        </div>
      )}
      <ErrorBox error={state.error} />
    </section>
  );
}

function Attendance({ session: s }: { session: Session }) {
  const threshold = s.attendance.threshold;
  const rows = s.attendance.items;
  const registered = s.registrations.filter((r) => r.status === "confirmed").length;
  const option = useMemo(() => attendanceChart(rows, threshold), [rows, threshold]);
  const table = (caption: string) => (
    <DataTable caption={caption} rows={rows} rowKey={(a) => a.personId} columns={[
      { header: "Person", cell: (a) => a.displayName },
      { header: "Present", cell: (a) => shareLabel(a, threshold) },
      { header: "Share", cell: (a) => percent(a.share), numeric: true },
      { header: "Recorded by", cell: (a) => sourceLabel(a.source) },
    ]} />
  );
  return (
    <section className="card" aria-labelledby="attendance-title">
      <h2 id="attendance-title">Attendance</h2>
      {rows.length === 0 ? (
        <Empty>No attendance recorded yet: check people in, or import the meeting&apos;s participant report.</Empty>
      ) : (
        <div data-testid="attendance">
          <p><strong data-testid="attendance-summary">{attendanceSummary(rows, registered)}</strong>
            {" "}(a person counts from {percent(threshold)} of the session).</p>
          <Chart option={option} label={`Share of the session each person was present for, against the ${percent(threshold)} line: ${attendanceSummary(rows, registered)}.`}
            table={table("The chart's data: share of the session per person")} height={Math.max(160, 40 * rows.length + 60)} testId="attendance-chart" />
          {table("Attendance by person")}
        </div>
      )}
    </section>
  );
}

function ImportCard({ sessionId, onImported }: { sessionId: string; onImported: () => void }) {
  const [csv, setCsv] = useState("");
  const [fileNote, setFileNote] = useState<string | null>(null);
  const [preview, setPreview] = useState<ImportResult | null>(null);
  const [imported, setImported] = useState<ImportResult | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [rowErrors, setRowErrors] = useState<RowErrorGroup[]>([]);
  const [state, run] = useMutation(ImportAttendance);

  const reset = () => {
    setPreview(null);
    setImported(null);
    setProblem(null);
    setRowErrors([]);
  };
  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return;
    setCsv(await file.text());
    setFileNote(`Loaded ${file.name} into the box below.`);
    reset();
  };
  const send = async (dryRun: boolean) => {
    reset();
    if (!csv.trim()) {
      setProblem({ message: "Choose the report file or paste it first.", fields: [] });
      return;
    }
    const r = await run({ sessionId, csv, dryRun });
    if (r.error) {
      setProblem(toProblem(r.error));
      setRowErrors(groupRowErrors(rowErrorsFrom(r.error.graphQLErrors), csv));
      return;
    }
    const out = r.data?.importAttendance ?? null;
    if (dryRun) setPreview(out);
    else {
      setImported(out);
      onImported();
    }
  };
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    void send(true);
  };
  return (
    <section className="card" aria-labelledby="import-title">
      <h2 id="import-title">Import a participant report</h2>
      <p>Zoom&apos;s or BigBlueButton&apos;s participant report (CSV). Rejoins are merged. Preview first: it checks
        every line and records nothing. A report with a bad line is not imported at all.</p>
      <form onSubmit={onSubmit} noValidate>
        <div className="field">
          <label htmlFor="report-file">Report file</label>
          <input id="report-file" type="file" accept=".csv,text/csv,text/plain" onChange={(e) => void onFile(e)}
            aria-describedby={fileNote ? "report-file-note" : undefined} />
          {fileNote && <p id="report-file-note" className="hint">{fileNote}</p>}
        </div>
        <div className="field">
          <label htmlFor="report-csv">Or paste the report</label>
          <textarea id="report-csv" rows={6} value={csv} spellCheck={false}
            aria-invalid={rowErrors.length > 0 ? true : undefined}
            onChange={(e) => { setCsv(e.target.value); setFileNote(null); reset(); }} />
        </div>
        <div className="buttons">
          <button type="submit" className="secondary" disabled={state.fetching}>Preview</button>
          {preview && preview.matched.length > 0 && (
            <button type="button" className="primary" disabled={state.fetching} onClick={() => void send(false)}>
              Import {preview.matched.length} {preview.matched.length === 1 ? "person" : "people"}
            </button>
          )}
        </div>
      </form>
      {problem && (
        <div className="state error" role="alert" data-testid="import-problem">
          {problem.message}
        </div>
      )}
      {rowErrors.length > 0 && (
        <div data-testid="report-errors">
          <DataTable caption="Problems in the report, by line; nothing was imported" rows={rowErrors}
            rowKey={(g) => String(g.line)} columns={[
              { header: "Line", cell: (g) => (g.line > 0 ? g.line : "—"), numeric: true },
              { header: "Problem", cell: (g) => g.problems.map((p) => p.message).join("; ") },
              { header: "Line in the file", cell: (g) => <code className="line">{g.content}</code> },
            ]} />
        </div>
      )}
      {preview && <ImportView result={preview} testId="import-preview" />}
      {imported && <div role="status"><ImportView result={imported} testId="import-done" /></div>}
    </section>
  );
}

function ImportView({ result, testId }: { result: ImportResult; testId: string }) {
  return (
    <div className={result.dryRun ? "" : "state ok"} data-testid={testId}>
      <p><strong>{result.dryRun
        ? `Preview (${result.format} report): ${result.matched.length} matched, ${result.unmatched.length} not matched. Nothing is recorded yet.`
        : `Imported: ${result.imported} attendance record${result.imported === 1 ? "" : "s"} written or changed.`}</strong></p>
      {result.matched.length > 0 && (
        <DataTable caption="Matched participants" rows={result.matched} rowKey={(m, i) => `${m.personId}-${i}`} columns={[
          { header: "In the report", cell: (m) => m.name },
          { header: "Email", cell: (m) => m.email ?? "—" },
          { header: "Minutes", cell: (m) => m.minutes, numeric: true },
          { header: "Note", cell: (m) => (m.keptAdjustment ? "Adjusted by hand: kept" : "") },
        ]} />
      )}
      {result.unmatched.length > 0 && (
        <DataTable caption="Not matched to a registrant (not recorded)" rows={result.unmatched}
          rowKey={(m, i) => `${m.name}-${i}`} columns={[
            { header: "In the report", cell: (m) => m.name },
            { header: "Email", cell: (m) => m.email ?? "—" },
            { header: "Minutes", cell: (m) => m.minutes, numeric: true },
          ]} />
      )}
    </div>
  );
}

function AdjustCard({ session: s, onAdjusted }: { session: Session; onAdjusted: () => void }) {
  const people = useMemo(() => {
    const byId = new Map<string, string>();
    const names = new Map(s.attendance.items.map((a) => [a.personId, a.displayName]));
    for (const r of s.registrations) if (r.status !== "cancelled") byId.set(r.personId, personLabel(r, names));
    for (const a of s.attendance.items) byId.set(a.personId, a.displayName);
    return [...byId.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  }, [s.registrations, s.attendance]);
  const [personId, setPersonId] = useState("");
  const [attended, setAttended] = useState("true");
  const [reason, setReason] = useState("");
  const [reasonError, setReasonError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [state, adjust] = useMutation(Adjust);
  const chosen = personId || people[0]?.[0] || "";

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setDone(null);
    if (!reason.trim()) {
      setReasonError("Give a reason: every adjustment is audited.");
      document.getElementById("adjust-reason")?.focus();
      return;
    }
    setReasonError(null);
    const r = await adjust({ sessionId: s.id, personId: chosen, attended: attended === "true", reason });
    if (!r.error) {
      setDone(`Attendance adjusted for ${people.find((p) => p[0] === chosen)?.[1] ?? "the person"}.`);
      setReason("");
      onAdjusted();
    }
  };
  return (
    <section className="card" aria-labelledby="adjust-title">
      <h2 id="adjust-title">Adjust attendance</h2>
      {people.length === 0 ? (
        <Empty>No one to adjust yet.</Empty>
      ) : (
        <form onSubmit={(e) => void onSubmit(e)} noValidate>
          <div className="field">
            <label htmlFor="adjust-person">Person</label>
            <select id="adjust-person" value={chosen} onChange={(e) => setPersonId(e.target.value)}>
              {people.map(([pid, name]) => <option key={pid} value={pid}>{name}</option>)}
            </select>
          </div>
          <div className="field">
            <label htmlFor="adjust-attended">Counts as</label>
            <select id="adjust-attended" value={attended} onChange={(e) => setAttended(e.target.value)}>
              <option value="true">Attended</option>
              <option value="false">Did not attend</option>
            </select>
          </div>
          <div className="field">
            <label htmlFor="adjust-reason">Reason (required, audited)</label>
            <textarea id="adjust-reason" rows={2} value={reason} onChange={(e) => setReason(e.target.value)}
              aria-invalid={reasonError ? true : undefined} aria-describedby={reasonError ? "adjust-reason-error" : undefined} />
            {reasonError && <p id="adjust-reason-error" className="field-error" role="alert">{reasonError}</p>}
          </div>
          <button type="submit" className="primary" disabled={state.fetching}>Adjust</button>
          <p role="status" className="hint">{done}</p>
          <ErrorBox error={state.error} />
        </form>
      )}
    </section>
  );
}
