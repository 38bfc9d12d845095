// The shell: who is signed in, navigation by role, and one route per page.
import { lazy, Suspense, useMemo, useState, type ReactNode } from "react";
import { NavLink, Navigate, Route, Routes, useLocation, useNavigate } from "react-router";
import { Provider, useQuery } from "urql";
import { decodeClaims, getToken, signOut } from "./lib/auth";
import { makeClient } from "./lib/client";
import { can, SessionContext, useSession, type Session } from "./lib/session";
import { graphql } from "./gql";
import { SignIn } from "./pages/SignIn";
import { Callback } from "./pages/Callback";
import { Home } from "./pages/Home";
import { Loading } from "./components/States";

// Pages load on first visit: sign-in and the start page do not wait for ECharts.
const AgencyOverview = lazy(() => import("./pages/AgencyOverview").then((m) => ({ default: m.AgencyOverview })));
const PractitionerPage = lazy(() => import("./pages/PractitionerPage").then((m) => ({ default: m.PractitionerPage })));
const RecordObservation = lazy(() => import("./pages/RecordObservation").then((m) => ({ default: m.RecordObservation })));
const ReadinessSurvey = lazy(() => import("./pages/ReadinessSurvey").then((m) => ({ default: m.ReadinessSurvey })));
const Roster = lazy(() => import("./pages/Roster").then((m) => ({ default: m.Roster })));
const CommunityCalendar = lazy(() => import("./pages/CommunityCalendar").then((m) => ({ default: m.CommunityCalendar })));
const CommunitySession = lazy(() => import("./pages/CommunitySession").then((m) => ({ default: m.CommunitySession })));
const CommunityRollCall = lazy(() => import("./pages/CommunityRollCall").then((m) => ({ default: m.CommunityRollCall })));
const CommunityCase = lazy(() => import("./pages/CommunityCase").then((m) => ({ default: m.CommunityCase })));
const CommunityReviewQueue = lazy(() => import("./pages/CommunityReviewQueue").then((m) => ({ default: m.CommunityReviewQueue })));
const CommunityMyCertificates = lazy(() => import("./pages/CommunityMyCertificates").then((m) => ({ default: m.CommunityMyCertificates })));
const CommunityVerify = lazy(() => import("./pages/CommunityVerify").then((m) => ({ default: m.CommunityVerify })));

const MeQuery = graphql(`
  query Me {
    me {
      id
      agencyId
      roles
      name
    }
  }
`);

export function App() {
  const [token, setTokenState] = useState(getToken());
  const client = useMemo(() => makeClient(), [token]); // a new identity gets a fresh cache
  const location = useLocation();
  const claims = token ? decodeClaims(token) : null;

  if (location.pathname === "/signin") return <SignIn onSignedIn={() => setTokenState(getToken())} />;
  if (location.pathname === "/callback") return <Callback onSignedIn={() => setTokenState(getToken())} />;
  // Public: a certificate's verification code is checked without signing in.
  if (location.pathname === "/verify" || location.pathname.startsWith("/verify/")) {
    return (
      <Suspense fallback={<Loading what="the page" />}>
        <Routes>
          <Route path="/verify" element={<CommunityVerify />} />
          <Route path="/verify/:code" element={<CommunityVerify />} />
        </Routes>
      </Suspense>
    );
  }
  if (!token || !claims) {
    return <Navigate to={`/signin?next=${encodeURIComponent(location.pathname + location.search)}`} replace />;
  }
  const out = () => {
    void signOut().then(() => setTokenState(null));
  };
  return (
    <Provider value={client}>
      <Signed token={token} claims={claims} signOut={out} />
    </Provider>
  );
}

function Signed({ token, claims, signOut: out }: Omit<Session, "name">) {
  const [me] = useQuery({ query: MeQuery });
  const session: Session = { token, claims, name: me.data?.me.name ?? null, signOut: out };
  return (
    <SessionContext.Provider value={session}>
      <Shell>
        <Suspense fallback={<Loading what="the page" />}>
        <Routes>
          <Route path="/" element={<Home />} />
          <Route path="/agency/:agencyId" element={<AgencyOverview />} />
          <Route path="/practitioners" element={<PractitionerPage />} />
          <Route path="/practitioners/:id" element={<PractitionerPage />} />
          <Route path="/observe" element={<RecordObservation />} />
          <Route path="/readiness" element={<ReadinessSurvey />} />
          <Route path="/roster" element={<Roster />} />
          <Route path="/community" element={<CommunityCalendar />} />
          <Route path="/community/sessions/:id" element={<CommunitySession />} />
          <Route path="/community/sessions/:id/roll-call" element={<CommunityRollCall />} />
          <Route path="/community/cases/new" element={<CommunityCase />} />
          <Route path="/community/cases/:id" element={<CommunityCase />} />
          <Route path="/community/review" element={<CommunityReviewQueue />} />
          <Route path="/me/certificates" element={<CommunityMyCertificates />} />
          <Route path="*" element={<NotFound />} />
        </Routes>
        </Suspense>
      </Shell>
    </SessionContext.Provider>
  );
}

function Shell({ children }: { children: ReactNode }) {
  const { claims, name, signOut: out } = useSession();
  const navigate = useNavigate();
  const roles = claims.roles;
  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      <header className="top">
        <NavLink to="/" className="brand">Trellis</NavLink>
        <nav aria-label="Main">
          <ul>
            {can.seeAgency(roles) && <li><NavLink to={`/agency/${claims.agency}`}>Agency</NavLink></li>}
            {can.isPractitioner(roles) && <li><NavLink to={`/practitioners/${claims.sub}`}>My practice</NavLink></li>}
            {can.seePractitioners(roles) && <li><NavLink to="/practitioners">Practitioners</NavLink></li>}
            {can.observe(roles) && <li><NavLink to="/observe">Record an observation</NavLink></li>}
            {can.answerSurvey(roles) && <li><NavLink to="/readiness">Readiness survey</NavLink></li>}
            {can.manageRoster(roles) && <li><NavLink to="/roster">Roster</NavLink></li>}
            <li><NavLink to="/community" end>Community</NavLink></li>
            {roles.includes("facilitator") && <li><NavLink to="/community/review">Review queue</NavLink></li>}
            <li><NavLink to="/me/certificates">My certificates</NavLink></li>
          </ul>
        </nav>
        <div className="who">
          <span data-testid="signed-in-as">{name ?? "Signed in"}</span>
          <span className="roles">{roles.map((r) => r.replace("_", " ")).join(", ")}</span>
          <button type="button" className="link" onClick={() => { out(); navigate("/signin"); }}>Sign out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>{children}</main>
    </>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p><NavLink to="/">Back to the start page</NavLink></p>
    </section>
  );
}
