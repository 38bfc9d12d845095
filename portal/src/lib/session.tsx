// Who is signed in, and what their roles let the portal show. The services still enforce everything.
import { createContext, useContext } from "react";
import type { Claims } from "./auth";

export interface Session {
  token: string;
  claims: Claims;
  name: string | null;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in page");
  return s;
}

export const can = {
  seeAgency: (roles: string[]) =>
    roles.some((r) => ["agency_admin", "supervisor", "partner", "platform_admin", "coach"].includes(r)),
  seePractitioners: (roles: string[]) =>
    roles.some((r) => ["coach", "supervisor", "agency_admin", "platform_admin"].includes(r)),
  observe: (roles: string[]) => roles.includes("observer"),
  manageRoster: (roles: string[]) => roles.includes("agency_admin"),
  answerSurvey: (roles: string[]) => !roles.every((r) => ["platform_admin", "partner"].includes(r)),
  isPractitioner: (roles: string[]) => roles.includes("practitioner"),
};
