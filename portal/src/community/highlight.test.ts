import { describe, expect, it } from "vitest";
import { caseStateLabel, caseSteps, editable, kindLabel, openFindings, segments } from "./highlight";

const f = (id: string, start: number, end: number, kind = "name") => ({ id, start, end, kind, status: "open" });

describe("segments", () => {
  it("splits a text into plain and highlighted pieces that join back to the text", () => {
    const text = "Mom Jane Roe called 555-123-4567 today.";
    const parts = segments(text, [f("n", 4, 12), f("p", 20, 32, "phone")]);
    expect(parts.map((p) => [p.text, p.findings.map((x) => x.id)])).toEqual([
      ["Mom ", []], ["Jane Roe", ["n"]], [" called ", []], ["555-123-4567", ["p"]], [" today.", []],
    ]);
    expect(parts.map((p) => p.text).join("")).toBe(text);
  });

  it("keeps overlapping findings without doubling text", () => {
    const text = "at 12 Oak Street 60601";
    const parts = segments(text, [f("a", 3, 22, "address"), f("z", 17, 22, "zip")]);
    expect(parts.map((p) => [p.text, p.findings.map((x) => x.id)])).toEqual([
      ["at ", []], ["12 Oak Street ", ["a"]], ["60601", ["a", "z"]],
    ]);
    expect(parts.map((p) => p.text).join("")).toBe(text);
  });

  it("counts offsets in code points, as the service does", () => {
    const text = "😀 Ana";  // the emoji is one code point but two UTF-16 units
    const parts = segments(text, [f("n", 2, 5)]);
    expect(parts.map((p) => p.text)).toEqual(["😀 ", "Ana"]);
  });

  it("ignores findings outside the text or empty, and clips the ones that overrun", () => {
    const parts = segments("short", [f("x", 10, 12), f("e", 2, 2), f("o", 3, 99)]);
    expect(parts.map((p) => [p.text, p.findings.map((x) => x.id)])).toEqual([["sho", []], ["rt", ["o"]]]);
  });

  it("gives the whole text as one plain piece without findings, and nothing for no text", () => {
    expect(segments("plain", [])).toEqual([{ text: "plain", start: 0, end: 5, findings: [] }]);
    expect(segments("", [])).toEqual([]);
  });
});

describe("findings and states in words", () => {
  it("names kinds and states", () => {
    expect(kindLabel("email")).toBe("email address");
    expect(kindLabel("something_new")).toBe("something new");
    expect(caseStateLabel("in_review")).toBe("In review by the hub");
  });

  it("blocks only on open findings and edits only before review", () => {
    expect(openFindings([{ status: "open" }, { status: "fixed" }, { status: "justified" }])).toHaveLength(1);
    expect(editable("returned")).toBe(true);
    expect(editable("in_review")).toBe(false);
  });
});

describe("the case's steps", () => {
  it("marks what is done, where the case is and what is to come", () => {
    const steps = caseSteps("approved");
    expect(steps.map((s) => s.status).slice(0, 5)).toEqual(["done", "done", "done", "current", "todo"]);
    expect(steps).toHaveLength(8);
  });

  it("puts a returned case back at review", () => {
    const current = caseSteps("returned").find((s) => s.status === "current");
    expect(current).toMatchObject({ state: "returned", label: "Returned by the hub" });
  });
});
