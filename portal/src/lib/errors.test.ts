import { describe, expect, it } from "vitest";
import { CombinedError } from "@urql/core";
import { GraphQLError } from "graphql";
import { fieldMessage, toProblem, unplaced } from "./errors";

function upstream422() {
  return new CombinedError({
    graphQLErrors: [
      new GraphQLError("The observation is not valid.", {
        extensions: {
          code: "BAD_USER_INPUT",
          errors: [
            { path: "input.observedOn", message: "must not be in the future", code: "future-date" },
            { path: null, message: "the instrument is retired" },
          ],
        },
      }),
    ],
  });
}

describe("toProblem", () => {
  it("keeps the service's field errors with their input paths", () => {
    const p = toProblem(upstream422());
    expect(p?.code).toBe("BAD_USER_INPUT");
    expect(fieldMessage(p, "input.observedOn")).toBe("must not be in the future");
    expect(fieldMessage(p, "input.setting")).toBeUndefined();
  });

  it("lists what no field can show, for the summary", () => {
    const p = toProblem(upstream422());
    expect(unplaced(p, (path) => path === "input.observedOn").map((f) => f.message)).toEqual([
      "the instrument is retired",
    ]);
  });

  it("says plainly when the server cannot be reached", () => {
    const p = toProblem(new CombinedError({ networkError: new Error("fetch failed") }));
    expect(p?.message).toMatch(/cannot be reached/);
    expect(p?.fields).toEqual([]);
  });

  it("is null without an error", () => {
    expect(toProblem(undefined)).toBeNull();
  });
});
