import { describe, expect, it } from "vitest";
import { concernsSession } from "./events";

describe("which live events concern a session", () => {
  it("takes a platform-wide session event by its subject (its data is withheld)", () => {
    expect(concernsSession({ type: "community.SessionCancelled.v1", subject: "s1", data: {} }, "s1")).toBe(true);
    expect(concernsSession({ type: "community.SessionScheduled.v1", subject: "s2", data: {} }, "s1")).toBe(false);
  });

  it("takes a registration event by the session its data names", () => {
    const e = { type: "community.RegistrationConfirmed.v1", subject: "r1", data: { session_id: "s1" } };
    expect(concernsSession(e, "s1")).toBe(true);
    expect(concernsSession(e, "s2")).toBe(false);
    expect(concernsSession({ type: "community.WaitlistOffered.v1", subject: "s1", data: null }, "s1")).toBe(false);
  });
});
