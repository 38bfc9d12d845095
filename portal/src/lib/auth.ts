// Signing in: the dev persona picker on a loopback dev stack, OIDC authorization code + PKCE otherwise.
import { UserManager, WebStorageStateStore } from "oidc-client-ts";

export const TOKEN_KEY = "trellis.token";

export type AuthConfig =
  | { mode: "dev" }
  | { mode: "oidc"; authority: string; client_id: string; scope: string; audience?: string | null }
  | { mode: "none" };

export interface Persona {
  key: string;
  label: string;
  name: string;
  agency: string;
  roles: string[];
}

export interface Claims {
  sub: string;
  agency: string;
  roles: string[];
  exp?: number;
}

let configPromise: Promise<AuthConfig> | null = null;

export function authConfig(): Promise<AuthConfig> {
  configPromise ??= fetch("/auth/config", { headers: { accept: "application/json" } })
    .then((r) => (r.ok ? (r.json() as Promise<AuthConfig>) : { mode: "none" as const }))
    .catch(() => ({ mode: "none" as const }));
  return configPromise;
}

export function getToken(): string | null {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const claims = decodeClaims(token);
  if (claims?.exp && claims.exp * 1000 < Date.now()) {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
  return token;
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** The token's claims, for showing what the roles allow; the services verify the signature. */
export function decodeClaims(token: string): Claims | null {
  try {
    const payload = token.split(".")[1];
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const raw = JSON.parse(json) as Record<string, unknown>;
    const roles = raw.roles ?? [];
    return {
      sub: String(raw.sub ?? ""),
      agency: String(raw.agency ?? ""),
      roles: Array.isArray(roles) ? roles.map(String) : [],
      exp: typeof raw.exp === "number" ? raw.exp : undefined,
    };
  } catch {
    return null;
  }
}

export async function personas(): Promise<Persona[]> {
  const r = await fetch("/dev/personas", { headers: { accept: "application/json" } });
  if (!r.ok) throw new Error(await problemText(r));
  const body = (await r.json()) as { personas: Persona[] };
  return body.personas;
}

export async function signInAsPersona(key: string): Promise<void> {
  const r = await fetch("/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ persona: key }),
  });
  if (!r.ok) throw new Error(await problemText(r));
  const body = (await r.json()) as { access_token: string };
  setToken(body.access_token);
}

let manager: UserManager | null = null;

function oidc(config: Extract<AuthConfig, { mode: "oidc" }>): UserManager {
  manager ??= new UserManager({
    authority: config.authority,
    client_id: config.client_id,
    redirect_uri: `${location.origin}/callback`,
    post_logout_redirect_uri: `${location.origin}/`,
    response_type: "code", // with PKCE, which oidc-client-ts always sends
    scope: config.scope,
    extraQueryParams: config.audience ? { audience: config.audience } : {},
    userStore: new WebStorageStateStore({ store: sessionStorage }),
  });
  return manager;
}

export async function signInWithOidc(returnTo: string): Promise<void> {
  const config = await authConfig();
  if (config.mode !== "oidc") throw new Error("OIDC is not configured on this gateway.");
  await oidc(config).signinRedirect({ state: { returnTo } });
}

/** Completes the redirect back from the issuer; returns where the person was going. */
export async function completeOidc(): Promise<string> {
  const config = await authConfig();
  if (config.mode !== "oidc") throw new Error("OIDC is not configured on this gateway.");
  const user = await oidc(config).signinRedirectCallback();
  setToken(user.access_token);
  const state = user.state as { returnTo?: string } | undefined;
  return state?.returnTo ?? "/";
}

export async function signOut(): Promise<void> {
  sessionStorage.removeItem(TOKEN_KEY);
  const config = await authConfig();
  if (config.mode === "oidc") await oidc(config).removeUser();
}

async function problemText(r: Response): Promise<string> {
  try {
    const p = (await r.json()) as { detail?: string; title?: string };
    return p.detail ?? p.title ?? `${r.status}`;
  } catch {
    return `The server answered ${r.status}.`;
  }
}
