import { describe, expect, it } from "vitest";
import {
  answersToSend, changed, completeness, groupByDomain, openRounds, parseAnswers, placeAnswerErrors, privacyFloor,
  scaleAnchors, type SurveyInstrument,
} from "./survey";

const instrument: SurveyInstrument = {
  scaleMin: 1,
  scaleMax: 5,
  domains: [
    { key: "leadership_commitment", label: "Leadership commitment", description: "Leaders champion it." },
    { key: "data_systems", label: "Data systems", description: "Data supports decisions." },
    { key: "funding", label: "Funding", description: "No statements yet." },
  ],
  items: [
    { key: "data_systems_1", domain: "data_systems", text: "We can collect the data." },
    { key: "leadership_commitment_1", domain: "leadership_commitment", text: "Leaders are committed." },
    { key: "leadership_commitment_2", domain: "leadership_commitment", text: "Leaders set aside resources." },
    { key: "stray_1", domain: "community_partners", text: "A statement of a domain not listed." },
  ],
};

describe("groupByDomain", () => {
  it("keeps the instrument's domain order, drops empty domains and keeps statements of unknown domains", () => {
    const groups = groupByDomain(instrument);
    expect(groups.map((g) => g.domain.key)).toEqual(["leadership_commitment", "data_systems", "community_partners"]);
    expect(groups[0].items.map((i) => i.key)).toEqual(["leadership_commitment_1", "leadership_commitment_2"]);
    expect(groups[2].domain.label).toBe("Community partners");
  });
});

describe("scaleAnchors", () => {
  it("names every point of a five-point scale", () => {
    expect(scaleAnchors(1, 5)).toEqual([
      { value: 1, label: "Strongly disagree" }, { value: 2, label: "Disagree" },
      { value: 3, label: "Neither agree nor disagree" }, { value: 4, label: "Agree" },
      { value: 5, label: "Strongly agree" },
    ]);
  });
  it("names only the ends of other scales, and nothing for a broken one", () => {
    expect(scaleAnchors(0, 6).map((a) => a.label)).toEqual(["Strongly disagree", "", "", "", "", "", "Strongly agree"]);
    expect(scaleAnchors(5, 1)).toEqual([]);
  });
});

describe("answers", () => {
  it("parses myAnswers' JSON, dropping what is not a whole number", () => {
    expect(parseAnswers({ a: 4, b: "5", c: 2.5, d: 1 })).toEqual({ a: 4, d: 1 });
    expect(parseAnswers(null)).toEqual({});
    expect(parseAnswers([1, 2])).toEqual({});
  });
  it("sends only this instrument's statements, within the scale", () => {
    expect(answersToSend(instrument, { leadership_commitment_1: 4, data_systems_1: 9, old_item: 3 }))
      .toEqual({ leadership_commitment_1: 4 });
  });
  it("counts what is answered and lists what is missing in order", () => {
    const c = completeness(instrument, { leadership_commitment_2: 3, data_systems_1: 0 });
    expect(c).toEqual({ answered: 1, total: 4, complete: false,
      missing: ["data_systems_1", "leadership_commitment_1", "stray_1"] });
    const all = Object.fromEntries(instrument.items.map((i) => [i.key, 5]));
    expect(completeness(instrument, all).complete).toBe(true);
    expect(completeness({ ...instrument, items: [] }, {}).complete).toBe(false);
  });
  it("knows when the answers differ from the saved ones", () => {
    expect(changed({ a: 1 }, { a: 1 })).toBe(false);
    expect(changed({ a: 1 }, { a: 2 })).toBe(true);
    expect(changed({}, { a: 2 })).toBe(true);
    expect(changed({ a: 1, b: 2 }, { a: 1 })).toBe(true);
  });
});

describe("placeAnswerErrors", () => {
  it("puts answers.<key> on its statement and the rest in the summary", () => {
    const placed = placeAnswerErrors([
      { path: "answers.data_systems_1", message: "9 is outside the scale 1-5" },
      { path: "answers", message: "answer at least one item" },
      { path: "answers.gone_1", message: "'gone_1' is not an item" },
      { path: null, message: "The round is closed." },
    ], instrument.items.map((i) => i.key));
    expect(placed.byItem).toEqual({ data_systems_1: "9 is outside the scale 1-5" });
    expect(placed.general).toEqual(["answer at least one item", "'gone_1' is not an item", "The round is closed."]);
  });
});

describe("openRounds and the privacy floor", () => {
  it("keeps open rounds, newest first", () => {
    const rounds = [
      { id: "a", status: "closed", openedAt: "2026-01-01T00:00:00Z" },
      { id: "b", status: "open", openedAt: "2026-02-01T00:00:00Z" },
      { id: "c", status: "open", openedAt: "2026-03-01T00:00:00Z" },
    ];
    expect(openRounds(rounds).map((r) => r.id)).toEqual(["c", "b"]);
    expect(openRounds([rounds[0]])).toEqual([]);
  });
  it("states the round's own minimum number of respondents", () => {
    expect(privacyFloor(5)).toContain("at least 5 people answered");
    expect(privacyFloor(1)).toContain("at least 1 person answered");
  });
});
