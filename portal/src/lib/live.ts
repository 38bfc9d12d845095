// Live updates: a page names the event types it shows, and refetches when one arrives for its agency.
import { useEffect, useRef, useState } from "react";
import { useSubscription } from "urql";
import { graphql } from "../gql";

const EventsSubscription = graphql(`
  subscription LiveEvents($agency: ID!) {
    events(agency: $agency) {
      id
      type
      subject
      time
      data
    }
  }
`);

export interface LiveEvent {
  id: string;
  type: string;
  subject: string;
  time: string;
  data: unknown;
}

/** Calls `onEvent` for each live event whose type contains one of `types` (e.g. "ObservationRecorded"). */
export function useLiveEvents(agency: string | null | undefined, types: string[], onEvent: (e: LiveEvent) => void) {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const [last, setLast] = useState<LiveEvent | null>(null);
  const [result] = useSubscription({ query: EventsSubscription, variables: { agency: agency ?? "" }, pause: !agency });
  const event = result.data?.events;
  useEffect(() => {
    if (!event) return;
    if (types.length === 0 || types.some((t) => event.type.includes(t))) {
      setLast(event);
      handler.current(event);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [event?.id]);
  return last;
}
