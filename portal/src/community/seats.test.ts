import { describe, expect, it } from "vitest";
import { ordinal, personLabel, registerAction, registrationView, seatState } from "./seats";

describe("seats", () => {
  it("counts free seats, offered seats being taken", () => {
    expect(seatState({ capacity: 20, seatsTaken: 5, waiting: 0 })).toMatchObject({ free: 15, full: false, tone: "good",
      label: "15 of 20 seats free" });
    expect(seatState({ capacity: 20, seatsTaken: 17, waiting: 0 }).tone).toBe("warn");
  });

  it("says a full session is full and how many wait", () => {
    expect(seatState({ capacity: 4, seatsTaken: 4, waiting: 2 })).toMatchObject({ free: 0, full: true,
      label: "Full (4 seats), 2 waiting" });
    expect(seatState({ capacity: 1, seatsTaken: 1, waiting: 0 }).label).toBe("Full (1 seat), no one waiting");
  });

  it("never counts negative seats after a capacity cut", () => {
    expect(seatState({ capacity: 3, seatsTaken: 5, waiting: 0 }).free).toBe(0);
  });
});

describe("a person's registration", () => {
  it("names the waiting-list position", () => {
    expect(registrationView({ status: "waiting", waitlistPosition: 2 })?.label).toBe(
      "You are on the waiting list: 2nd in line");
    expect(ordinal(11)).toBe("11th");
    expect(ordinal(23)).toBe("23rd");
  });

  it("explains why it was cancelled", () => {
    expect(registrationView({ status: "cancelled", cancelReason: "offer_expired" })).toMatchObject({ active: false,
      label: "Your registration was cancelled: the offered seat was not accepted in time" });
  });

  it("is nothing without a registration", () => {
    expect(registrationView(null)).toBeNull();
  });

  it("offers registering, joining the list, or nothing", () => {
    const free = { capacity: 4, seatsTaken: 1, waiting: 0 };
    const full = { capacity: 4, seatsTaken: 4, waiting: 1 };
    expect(registerAction(true, free, null)).toBe("register");
    expect(registerAction(true, full, null)).toBe("join-waitlist");
    expect(registerAction(true, free, { status: "cancelled" })).toBe("register");
    expect(registerAction(true, free, { status: "confirmed" })).toBeNull();
    expect(registerAction(false, free, null)).toBeNull();
  });
});

describe("who a registration is", () => {
  it("names the person when known, else the place in line", () => {
    const names = new Map([["p1", "Ana Ruiz"]]);
    expect(personLabel({ personId: "p1", position: 1 }, names)).toBe("Ana Ruiz");
    expect(personLabel({ personId: "0190a000-dead", position: 3 }, names)).toBe("Registrant 3 (0190a000)");
  });

  it("prefers the registration's own name, falling back when it is null", () => {
    const names = new Map([["p1", "Ana R."]]);
    expect(personLabel({ personId: "p1", position: 1, personName: "Ana Ruiz" }, names)).toBe("Ana Ruiz");
    expect(personLabel({ personId: "p1", position: 1, personName: null }, names)).toBe("Ana R.");
    expect(personLabel({ personId: "0190a000-dead", position: 2, personName: null }, new Map()))
      .toBe("Registrant 2 (0190a000)");
  });
});
