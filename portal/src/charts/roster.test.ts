import { describe, expect, it } from "vitest";
import {
  csvRecords, groupRowErrors, importSummary, nothingToImport, rowErrorsFrom, sortStaff,
} from "./roster";

// What the gateway passes on for a refused file: the service's problem+json in extensions.problem.
const refused = [{
  message: "3 problem(s) in the file; nothing was imported.",
  extensions: {
    code: "BAD_USER_INPUT", service: "readiness", status: 422,
    problem: {
      status: 422, detail: "3 problem(s) in the file; nothing was imported.",
      errors: [
        { field: "line 4, roles", pointer: "#/line/4", line: 4, column: "roles", message: "unknown role 'wizard'" },
        { field: "line 2, email", pointer: "#/line/2", line: 2, column: "email", message: "'x' is not an email address" },
        { field: "line 4, hire_date", pointer: "#/line/4", line: 4, column: "hire_date", message: "the hire date is in the future" },
      ],
    },
  },
}];

describe("rowErrorsFrom", () => {
  it("reads the row errors from extensions.problem.errors, in row order", () => {
    expect(rowErrorsFrom(refused)).toEqual([
      { line: 2, column: "email", message: "'x' is not an email address" },
      { line: 4, column: "roles", message: "unknown role 'wizard'" },
      { line: 4, column: "hire_date", message: "the hire date is in the future" },
    ]);
  });
  it("falls back to the pointer for the row, and a file-wide error has no column", () => {
    const errs = [{ extensions: { problem: { errors: [
      { pointer: "#/line/1", column: null, message: "the header must name the columns name, email, roles" },
    ] } } }];
    expect(rowErrorsFrom(errs)).toEqual([
      { line: 1, column: null, message: "the header must name the columns name, email, roles" }]);
  });
  it("finds nothing in errors without a problem (e.g. forbidden, or the network)", () => {
    expect(rowErrorsFrom([{ extensions: { code: "FORBIDDEN" } }, { extensions: null }, {}])).toEqual([]);
    expect(rowErrorsFrom(undefined)).toEqual([]);
  });
});

describe("csvRecords and groupRowErrors", () => {
  it("splits records, not lines: a quoted cell may hold a line break; CRLF and a BOM are fine", () => {
    const text = '\ufeffname,email,roles\r\n"Ada\nLovelace",ada@x.org,coach\r\n\r\nBo,bo@x.org,practitioner\n';
    expect(csvRecords(text)).toEqual(["name,email,roles", '"Ada\nLovelace",ada@x.org,coach', "",
      "Bo,bo@x.org,practitioner"]);
  });
  it("groups errors by row with the row's text", () => {
    const csv = "name,email,roles\nAl,x,coach\nBea,bea@x.org,coach\nCy,cy@x.org,wizard\n";
    const groups = groupRowErrors(rowErrorsFrom(refused), csv);
    expect(groups.map((g) => [g.line, g.content, g.problems.length])).toEqual([
      [2, "Al,x,coach", 1], [4, "Cy,cy@x.org,wizard", 2]]);
    expect(groupRowErrors([{ line: 9, column: null, message: "m" }], csv)[0].content).toBe("");
  });
});

describe("import figures and the staff table", () => {
  it("words a preview and an import", () => {
    const r = { dryRun: true, rows: 3, created: 2, updated: 0, unchanged: 1 };
    expect(importSummary(r)).toBe("Preview — 3 rows: 2 new, 0 updated, 1 unchanged. Nothing has been imported yet.");
    expect(importSummary({ ...r, dryRun: false, rows: 1, created: 1, unchanged: 0 }))
      .toBe("Imported — 1 row: 1 new, 0 updated, 0 unchanged.");
    expect(nothingToImport(r)).toBe(false);
    expect(nothingToImport({ ...r, created: 0 })).toBe(true);
  });
  it("lists active people first, then by name", () => {
    const staff = [
      { id: "1", name: "Zoe", status: "active" }, { id: "2", name: "Adam", status: "left" },
      { id: "3", name: "Bea", status: "active" },
    ];
    expect(sortStaff(staff).map((s) => s.name)).toEqual(["Bea", "Zoe", "Adam"]);
  });
});
