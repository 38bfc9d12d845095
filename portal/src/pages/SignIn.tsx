// Development: pick a seeded persona. Production: the OIDC issuer's sign-in page (code flow + PKCE).
import { useEffect, useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { authConfig, personas, signInAsPersona, signInWithOidc, type AuthConfig, type Persona } from "../lib/auth";
import { Loading } from "../components/States";

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [config, setConfig] = useState<AuthConfig | null>(null);
  const [people, setPeople] = useState<Persona[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const next = safeNext(params.get("next"));

  useEffect(() => {
    void authConfig().then((c) => {
      setConfig(c);
      if (c.mode === "dev") personas().then(setPeople, (e: Error) => setError(e.message));
    });
  }, []);

  async function pick(key: string) {
    setError(null);
    try {
      await signInAsPersona(key);
      onSignedIn();
      navigate(next, { replace: true });
    } catch (e) {
      setError((e as Error).message);
    }
  }

  return (
    <main id="main" className="signin">
      <h1>Sign in to Trellis</h1>
      {!config && <Loading what="sign-in options" />}
      {config?.mode === "oidc" && (
        <button type="button" className="primary" onClick={() => void signInWithOidc(next)}>
          Sign in with your organisation
        </button>
      )}
      {config?.mode === "none" && (
        <p role="alert">Sign-in is not configured on this server. Ask your administrator to set up OIDC.</p>
      )}
      {config?.mode === "dev" && (
        <section aria-labelledby="personas-h">
          <h2 id="personas-h">Development personas</h2>
          <p className="hint">
            This stack runs with the development secret on this machine only. Pick who you want to be; the
            demo seed created each of them.
          </p>
          {!people && !error && <Loading what="personas" />}
          <ul className="personas">
            {people?.map((p) => (
              <li key={p.key}>
                <button type="button" onClick={() => void pick(p.key)}>
                  <strong>{p.label} — {p.name}</strong>
                  <span>{p.roles.map((r) => r.replace("_", " ")).join(", ")}</span>
                </button>
              </li>
            ))}
          </ul>
        </section>
      )}
      {error && <p role="alert" className="state error">{error}</p>}
    </main>
  );
}

/** Only a path on this site: an open redirect would let a link send people elsewhere after sign-in. */
function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}
