// "My certificates": continuing-education certificates of participation, each with its sessions and hours,
// the PDF (fetched with the bearer token, saved as a file) and the public verification code and link.
import { useState } from "react";
import { Link } from "react-router";
import { useQuery } from "urql";
import { graphql } from "../gql";
import type { CommunityMyCertificatesQuery } from "../gql/graphql";
import { DataTable } from "../components/DataTable";
import { Empty, ErrorBox, Loading } from "../components/States";
import { useLiveEvents } from "../lib/live";
import { useSession } from "../lib/session";
import { formatCode } from "../community/attendance";
import { LiveNote } from "../community/ui";

const CertificatesQuery = graphql(`
  query CommunityMyCertificates {
    me {
      id
      certificates {
        id
        programTitle
        personName
        agencyName
        cycle
        hours
        verificationCode
        issuedOn
        pdfPath
        sessions {
          id
          title
          startsAt
          hours
        }
      }
    }
  }
`);

type Certificate = CommunityMyCertificatesQuery["me"]["certificates"][number];

export function CommunityMyCertificates() {
  const { claims } = useSession();
  const [result, reexecute] = useQuery({ query: CertificatesQuery });
  const [at, setAt] = useState<Date | null>(null);
  useLiveEvents(claims.agency, ["ContinuingEducationEarned"], () => {
    reexecute({ requestPolicy: "network-only" });
    setAt(new Date());
  });
  const certificates = result.data?.me.certificates ?? [];
  return (
    <section className="community" aria-labelledby="certs-title">
      <h1 id="certs-title">My certificates</h1>
      <p className="hint">Certificates of participation for community programs. Anyone can check one with its
        verification code, without signing in.</p>
      <LiveNote at={at} />
      {result.fetching && !result.data ? (
        <Loading what="your certificates" />
      ) : result.error && !result.data ? (
        <ErrorBox error={result.error} />
      ) : certificates.length === 0 ? (
        <Empty>No certificates yet. Attend a program&apos;s sessions to earn one: <Link to="/community">see the sessions</Link>.</Empty>
      ) : (
        <ul className="plain" data-testid="certificates">
          {certificates.map((c) => <li key={c.id}><CertificateCard c={c} /></li>)}
        </ul>
      )}
    </section>
  );
}

function CertificateCard({ c }: { c: Certificate }) {
  const { token } = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const code = formatCode(c.verificationCode);
  const verify = `/verify/${encodeURIComponent(code)}`;

  // A link cannot carry the bearer token: fetch the PDF with it and save the answer as a file.
  const download = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await fetch(c.pdfPath, { headers: { authorization: `Bearer ${token}`, accept: "application/pdf" } });
      if (!r.ok) throw new Error(`The certificate could not be downloaded (the server answered ${r.status}).`);
      const blob = await r.blob();
      const href = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = href;
      a.download = `certificate-${code}.pdf`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(href), 10_000);
    } catch (e) {
      setError(e instanceof Error && e.message.startsWith("The certificate") ? e.message
        : "Trellis cannot be reached. Check your connection and try again.");
    } finally {
      setBusy(false);
    }
  };

  return (
    <article className="card" aria-labelledby={`cert-${c.id}`} data-testid="certificate">
      <h2 id={`cert-${c.id}`}>{c.programTitle}</h2>
      <dl className="figures">
        <div><dt>Hours</dt><dd>{c.hours.toLocaleString()}</dd></div>
        <div><dt>Sessions</dt><dd>{c.sessions.length}</dd></div>
        <div><dt>Cycle</dt><dd>{c.cycle}</dd></div>
        <div><dt>Issued on</dt><dd>{c.issuedOn}</dd></div>
      </dl>
      <p>{c.personName}, {c.agencyName}. Verification code <strong data-testid="verification-code">{code}</strong>
        {" "}· <Link to={verify} data-testid="verify-link">check it publicly</Link></p>
      <div className="buttons">
        <button type="button" className="primary" disabled={busy} onClick={() => void download()}>
          {busy ? "Downloading…" : "Download the PDF"}<span className="visually-hidden"> ({c.programTitle})</span>
        </button>
      </div>
      {error && <div className="state error" role="alert">{error}</div>}
      <DataTable caption="Sessions counted" rows={c.sessions} rowKey={(s) => s.id} columns={[
        { header: "Session", cell: (s) => s.title },
        { header: "Date", cell: (s) => new Date(s.startsAt).toLocaleDateString() },
        { header: "Hours", cell: (s) => s.hours.toLocaleString(), numeric: true },
      ]} />
    </article>
  );
}
