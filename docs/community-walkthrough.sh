#!/usr/bin/env bash
# A community session end to end, against `make run` (see the README, "Run a community session end to end"):
# program -> registration -> attendance -> certificate, and a case from draft to recommendations.
# Every step is a plain REST call to the community service; the portal and GraphQL do the same.
set -euo pipefail

C=${TRELLIS_COMMUNITY_URL:-http://127.0.0.1:8005}
TRELLIS=${TRELLIS:-.venv/bin/trellis}
AGENCY=0190a000-0000-7000-8000-00000000a9e1        # the demo agency
MARA=f93b4c48-05ef-5624-bdbe-10a773b879d1          # Mara Quinn, facilitator
ANA=4fa09f99-3e37-534d-ae0d-38ff485199e6           # Ana Ruiz, practitioner
MARA_TOKEN=$($TRELLIS token --sub $MARA --agency $AGENCY --role facilitator)
ANA_TOKEN=$($TRELLIS token --sub $ANA --agency $AGENCY --role practitioner)

call() {  # call TOKEN METHOD PATH [JSON]: prints the answer, fails on an error status
  curl -sS --fail-with-body -X "$2" "$C$3" -H "Authorization: Bearer $1" -H 'content-type: application/json' \
    ${4:+-d "$4"}
}
field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

# 1. Mara creates a program with one session starting in 30 minutes (UTC) and a one-session certificate rule.
S=$(( ($(date -u +%s) / 60 + 30) * 60 ))  # in 30 minutes, on the minute (epoch seconds)
START=$(date -u -d @$S +%Y-%m-%dT%H:%M:%S)
PROGRAM=$(call "$MARA_TOKEN" POST /v1/programs "{\"title\": \"Walkthrough ECHO $(date -u +%H%M%S)\",
  \"timezone\": \"UTC\", \"recurrence\": {\"dtstart\": \"$START\", \"rrule\": \"FREQ=DAILY;COUNT=1\"},
  \"duration_minutes\": 60, \"capacity\": 10, \"topic\": \"Strengths-based family team meetings\",
  \"meeting_url\": \"https://meet.example.org/walkthrough\", \"ce_rule\": {\"kind\": \"count\", \"sessions\": 1}}" \
  | field '["id"]')
SESSION=$(call "$MARA_TOKEN" GET "/v1/sessions?program_id=$PROGRAM" | field '["items"][0]["id"]')
echo "program $PROGRAM, session $SESSION at $START UTC"

# 2. Ana registers: a seat is free, so she is confirmed and now sees the meeting link.
call "$ANA_TOKEN" POST "/v1/sessions/$SESSION/registrations" '{}' | field '["status"]'
call "$ANA_TOKEN" GET "/v1/sessions/$SESSION" | field '["meeting_url"]'

# 3. Mara imports the video platform's participant report: Ana joined, dropped out and rejoined.
T() { date -u -d @$((S + $1 * 60)) '+%m/%d/%Y %I:%M:%S %p'; }  # Zoom's format, minutes after the start
CSV="Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest
Ana Ruiz,ana@example.org,$(T 0),$(T 25),25,No
Ana Ruiz,ana@example.org,$(T 27),$(T 60),33,No"
BODY=$(python3 -c 'import json, sys; print(json.dumps({"csv": sys.argv[1], "format": "zoom",
  "mapping": {"ana@example.org": sys.argv[2]}}))' "$CSV" "$ANA")
call "$MARA_TOKEN" POST "/v1/sessions/$SESSION/attendance-imports" "$BODY" \
  | field '["attendance"][0]["minutes_present"]'

# 4. The rule is met: Ana has a certificate (PDF) whose code anyone can verify without signing in.
CODE=$(call "$ANA_TOKEN" GET /v1/certificates \
  | python3 -c "import json, sys; print(*[c['verification_code'] for c in json.load(sys.stdin)['items']
                                         if c['program_id'] == '$PROGRAM'])")
curl -sS --fail-with-body "$C/v1/certificates/verify/$CODE"; echo

# 5. Ana drafts a case for the session. The screening finds the family's name and phone number ...
CASE=$(call "$ANA_TOKEN" POST /v1/cases "{\"session_id\": \"$SESSION\", \"title\": \"Engaging a reluctant father\",
  \"fields\": {\"strengths\": \"Mr. Delgado calls every week from 555-201-3344 to ask how the kids are.\",
  \"needs\": \"Stable housing and a say in the plan.\", \"tried\": \"Evening team meetings.\",
  \"question\": \"How do we bring dad into the team meetings?\"}}")
CASE_ID=$(echo "$CASE" | field '["id"]')
echo "$CASE" | python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["state"], [(f["kind"], f["text"]) for f in c["findings"]])'

# ... so she fixes the text, and the case is screened clean.
call "$ANA_TOKEN" PATCH "/v1/cases/$CASE_ID" '{"fields": {"strengths":
  "The father calls every week to ask how the kids are."}}' | field '["state"]'

# 6. Ana submits it; Mara approves it, presents it in the session and issues recommendations.
call "$ANA_TOKEN" POST "/v1/cases/$CASE_ID/submit" '{}' | field '["state"]'
call "$MARA_TOKEN" POST "/v1/cases/$CASE_ID/review" '{"decision": "approve", "comments": "Good question."}' \
  | field '["state"]'
call "$MARA_TOKEN" POST "/v1/cases/$CASE_ID/presented" '{}' | field '["state"]'
FOLLOW_UP=$(date -u -d '+4 weeks' +%Y-%m-%d)
call "$MARA_TOKEN" POST "/v1/cases/$CASE_ID/recommendations" "{\"follow_up_on\": \"$FOLLOW_UP\", \"items\": [
  {\"text\": \"Offer the father a phone-in option for team meetings.\"},
  {\"text\": \"Ask him which strengths of his the team should build on.\"}]}" | field '["state"]'
