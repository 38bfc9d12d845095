import { useEffect, useState } from "react";
import { useNavigate } from "react-router";
import { completeOidc } from "../lib/auth";
import { Loading } from "../components/States";

export function Callback({ onSignedIn }: { onSignedIn: () => void }) {
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    completeOidc().then(
      (to) => { onSignedIn(); navigate(to, { replace: true }); },
      (e: Error) => setError(e.message),
    );
  }, [navigate, onSignedIn]);
  return (
    <main id="main" className="signin">
      <h1>Signing in</h1>
      {error ? <p role="alert" className="state error">{error}</p> : <Loading what="your session" />}
    </main>
  );
}
