// Small pieces the community pages share: the live note, a session's times in both zones, badges.
import type { ReactNode } from "react";
import { sessionTimes, type Timed } from "./time";
import "./community.css";

/** "Live — updated at 10:02:13": announced politely when an update arrived. */
export function LiveNote({ at, testId = "live" }: { at: Date | null; testId?: string }) {
  return (
    <p className="live" aria-live="polite" data-testid={testId}>
      {at && <><span aria-hidden="true">● </span>Live — updated at {at.toLocaleTimeString()}</>}
    </p>
  );
}

export function Times({ session, zone }: { session: Timed; zone: string }) {
  const t = sessionTimes(session, zone);
  return (
    <span className="times">
      <span data-testid="own-time">{t.own}</span>
      {t.viewer && (
        <span className="muted" data-testid="viewer-time"> · your time: {t.viewer}</span>
      )}
    </span>
  );
}

export function Badge({ tone, children, testId }: { tone: "good" | "warn" | "bad"; children: ReactNode; testId?: string }) {
  return <span className={`badge ${tone}`} data-testid={testId}>{children}</span>;
}

/** A fresh random key for a retried mutation (the same key for a retry of the same action). */
export function newKey(): string {
  return crypto.randomUUID();
}
