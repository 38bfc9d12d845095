// The public certificate check: anyone (no sign-in) enters or follows a verification code and sees whose
// certificate it is, for which program and how many hours, or that no certificate has this code.
import { useEffect, useState, type FormEvent } from "react";
import { useNavigate, useParams } from "react-router";
import { formatCode } from "../community/attendance";
import "../community/community.css";

interface Verification {
  valid: boolean;
  person_name: string;
  agency_name: string;
  program_title: string;
  cycle?: string;
  hours: number;
  sessions: { id: string; title: string; starts_at: string; hours: number }[];
  issued_on: string;
}

type State =
  | { kind: "idle" }
  | { kind: "loading" }
  | { kind: "found"; v: Verification }
  | { kind: "unknown" }
  | { kind: "error"; message: string };

export function CommunityVerify() {
  const { code = "" } = useParams();
  const navigate = useNavigate();
  const [typed, setTyped] = useState(code);
  const [state, setState] = useState<State>({ kind: code ? "loading" : "idle" });

  useEffect(() => {
    if (!code) return;
    setTyped(formatCode(code));
    let stale = false;
    setState({ kind: "loading" });
    fetch(`/public/certificates/verify/${encodeURIComponent(formatCode(code))}`, { headers: { accept: "application/json" } })
      .then(async (r) => {
        if (stale) return;
        if (r.status === 404) setState({ kind: "unknown" });
        else if (!r.ok) setState({ kind: "error", message: `The check failed (the server answered ${r.status}). Try again later.` });
        else setState({ kind: "found", v: (await r.json()) as Verification });
      })
      .catch(() => { if (!stale) setState({ kind: "error", message: "Trellis cannot be reached. Check your connection and try again." }); });
    return () => { stale = true; };
  }, [code]);

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    const next = formatCode(typed);
    if (next) navigate(`/verify/${encodeURIComponent(next)}`);
  };

  return (
    <main id="main" className="public-page community">
      <h1>Check a certificate</h1>
      <p>Trellis certificates of participation carry a verification code such as ABCD-EFGH-2345. Enter it to see
        whose certificate it is.</p>
      <form onSubmit={onSubmit} className="card" noValidate>
        <div className="field">
          <label htmlFor="verify-code">Verification code</label>
          <input id="verify-code" value={typed} autoComplete="off" spellCheck={false}
            onChange={(e) => setTyped(e.target.value)} />
        </div>
        <button type="submit" className="primary">Check</button>
      </form>
      <section className="card" aria-labelledby="result-title" aria-live="polite">
        <h2 id="result-title">Result</h2>
        {state.kind === "idle" && <p className="muted">Enter a code above.</p>}
        {state.kind === "loading" && <p className="state loading" role="status">Checking…</p>}
        {state.kind === "unknown" && (
          <div className="state error" role="alert" data-testid="verify-unknown">No certificate has the code
            {" "}{formatCode(code)}. Check the code as printed on the certificate.</div>
        )}
        {state.kind === "error" && <div className="state error" role="alert">{state.message}</div>}
        {state.kind === "found" && (
          <div data-testid="verify-result">
            <p className="state ok"><strong>Valid certificate.</strong></p>
            <dl className="details">
              <dt>Awarded to</dt><dd>{state.v.person_name}</dd>
              <dt>Agency</dt><dd>{state.v.agency_name}</dd>
              <dt>Program</dt><dd>{state.v.program_title}</dd>
              {state.v.cycle && <><dt>Cycle</dt><dd>{state.v.cycle}</dd></>}
              <dt>Hours</dt><dd>{state.v.hours}</dd>
              <dt>Sessions</dt><dd>{state.v.sessions.length}</dd>
              <dt>Issued on</dt><dd>{state.v.issued_on}</dd>
            </dl>
          </div>
        )}
      </section>
    </main>
  );
}
