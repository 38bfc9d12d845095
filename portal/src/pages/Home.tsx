// The start page: what this person can do, by role.
import { Link } from "react-router";
import { can, useSession } from "../lib/session";

export function Home() {
  const { claims, name } = useSession();
  const roles = claims.roles;
  const tiles = [
    can.seeAgency(roles) && { to: `/agency/${claims.agency}`, title: "Agency overview",
      text: "Implementation stage, readiness, the plan, certification and turnover." },
    can.seePractitioners(roles) && { to: "/practitioners", title: "Practitioners",
      text: "A practitioner's fidelity control chart, certification and coaching tasks." },
    can.isPractitioner(roles) && { to: `/practitioners/${claims.sub}`, title: "My practice",
      text: "Your fidelity trend, certification and coaching tasks." },
    can.observe(roles) && { to: "/observe", title: "Record an observation",
      text: "Score a session on the active instrument." },
    can.answerSurvey(roles) && { to: "/readiness", title: "Readiness survey",
      text: "Answer your agency's open readiness round." },
    can.manageRoster(roles) && { to: "/roster", title: "Roster",
      text: "Import staff from a CSV file, with a preview first." },
  ].filter(Boolean) as { to: string; title: string; text: string }[];
  return (
    <section>
      <h1>Welcome{name ? `, ${name}` : ""}</h1>
      <ul className="tiles">
        {tiles.map((t) => (
          <li key={t.to}>
            <Link to={t.to}><strong>{t.title}</strong><span>{t.text}</span></Link>
          </li>
        ))}
      </ul>
    </section>
  );
}
