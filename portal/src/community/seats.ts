// Seats, the waiting list and a person's registration, in words.

export type RegistrationStatus = "confirmed" | "waiting" | "offered" | "cancelled";

export interface SeatFigures {
  capacity: number;
  seatsTaken: number; // confirmed + offered
  waiting: number;
}

export interface SeatState {
  free: number;
  full: boolean;
  label: string;
  tone: "good" | "warn" | "bad";
}

export function seatState({ capacity, seatsTaken, waiting }: SeatFigures): SeatState {
  const free = Math.max(0, capacity - seatsTaken);
  if (free > 0) {
    const few = free <= Math.max(1, Math.floor(capacity / 5));
    return { free, full: false, tone: few ? "warn" : "good",
      label: `${free} of ${capacity} seat${capacity === 1 ? "" : "s"} free` };
  }
  const queue = waiting === 0 ? "no one waiting" : `${waiting} waiting`;
  return { free: 0, full: true, tone: "bad", label: `Full (${capacity} seat${capacity === 1 ? "" : "s"}), ${queue}` };
}

export interface RegistrationLike {
  status: RegistrationStatus | string;
  waitlistPosition?: number | null;
  offerExpiresAt?: string | null;
  cancelReason?: string | null;
}

export interface RegistrationView {
  label: string;
  tone: "good" | "warn" | "bad";
  /** Whether the person holds an active registration (and so may cancel it). */
  active: boolean;
}

const CANCEL_REASONS: Record<string, string> = {
  session_cancelled: "the session was cancelled",
  offer_declined: "you declined the offered seat",
  offer_expired: "the offered seat was not accepted in time",
};

export function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" } as Record<number, string>)[n % 10] ?? "th";
  return `${n}${s}`;
}

export function registrationView(r: RegistrationLike | null | undefined): RegistrationView | null {
  if (!r) return null;
  switch (r.status) {
    case "confirmed":
      return { label: "You are registered: your seat is confirmed", tone: "good", active: true };
    case "waiting":
      return {
        label: r.waitlistPosition
          ? `You are on the waiting list: ${ordinal(r.waitlistPosition)} in line`
          : "You are on the waiting list",
        tone: "warn", active: true,
      };
    case "offered":
      return { label: "A seat is offered to you: accept it before the offer expires", tone: "warn", active: true };
    case "cancelled": {
      const why = r.cancelReason ? CANCEL_REASONS[r.cancelReason] : undefined;
      return { label: why ? `Your registration was cancelled: ${why}` : "Your registration is cancelled", tone: "bad",
        active: false };
    }
    default:
      return { label: r.status, tone: "warn", active: false };
  }
}

/** The button a person sees for a session, or null for none. */
export function registerAction(open: boolean, seats: SeatFigures, r: RegistrationLike | null | undefined):
  "register" | "join-waitlist" | null {
  if (!open) return null;
  if (r && r.status !== "cancelled") return null;
  return seatState(seats).full ? "join-waitlist" : "register";
}

/** The person's name: the registration's own (from the community's directory), else attendance's, else (a person
 * the community has not heard of yet) their place in line. */
export function personLabel(r: { personId: string; position: number; personName?: string | null },
  names: ReadonlyMap<string, string>): string {
  return r.personName || names.get(r.personId) || `Registrant ${r.position} (${r.personId.slice(0, 8)})`;
}
