import { describe, expect, it } from "vitest";
import { decodeClaims } from "./auth";

function token(payload: object): string {
  const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${b64({ alg: "HS256" })}.${b64(payload)}.sig`;
}

describe("decodeClaims", () => {
  it("reads who, which agency and which roles", () => {
    const c = decodeClaims(token({ sub: "p1", agency: "a1", roles: ["coach"], exp: 99 }));
    expect(c).toEqual({ sub: "p1", agency: "a1", roles: ["coach"], exp: 99 });
  });

  it("gives no claims for a token that is not a JWT", () => {
    expect(decodeClaims("not-a-token")).toBeNull();
  });

  it("treats roles that are not a list as none", () => {
    expect(decodeClaims(token({ sub: "p1", agency: "a1", roles: "coach" }))?.roles).toEqual([]);
  });
});
