// Polly's poll tool: create a poll, see it posted, vote, and watch the results move.
// graphql-ws (loaded as a browser build by index.html) speaks graphql-transport-ws; two
// subscriptions keep the page live: guildRolesChanged (the role dropdown, as before) and
// pollUpdated (the guild's polls, their status and results). Nothing is polled or reloaded.
// Signed in with Discord, the session cookie goes with every request and the WebSocket; the
// page and the API share an origin, as mutations signed in by cookie must.

const $ = (id) => document.getElementById(id);
const endpoint = new URL("/graphql", location.href);
const socketUrl = endpoint.href.replace(/^http/, "ws");
const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const MIN_OPTIONS = 2;
const MAX_OPTIONS = 10;

const state = {
  guilds: [],
  manages: new Set(), // guild ids where the viewer may create polls
  guildId: "",
  channelId: "",
  polls: new Map(), // id -> poll, as last read
  drafts: new Map(), // poll id -> Set of positions ticked but not sent yet (maxChoices > 1)
  closesTouched: false,
  everConnected: false,
};

function setConnection(name, text) {
  const badge = $("connection");
  badge.dataset.state = name;
  badge.textContent = text ?? name;
}

function say(text) {
  $("message").textContent = text ?? "";
}

class GraphQLErrors extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join(" "));
    this.errors = errors;
  }
}

async function query(document, variables) {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/graphql-response+json" },
    body: JSON.stringify({ query: document, variables }),
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`The API answered ${response.status} ${response.statusText}.`);
  }
  if (body.errors?.length) throw new GraphQLErrors(body.errors);
  return body.data;
}

function fill(select, items, keep) {
  const previous = keep ? select.value : "";
  select.replaceChildren(...items.map(([value, label]) => new Option(label, value)));
  if (previous && items.some(([value]) => value === previous)) select.value = previous;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// -- times: datetime-local inputs are the browser's own zone; the API wants an offset ---------

const pad = (n) => String(n).padStart(2, "0");

function localInput(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A Date as an ISO string with the browser's offset at that moment: 2026-12-11T11:00:00+01:00. */
function withOffset(date) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const offset = `${sign}${pad(Math.floor(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
  return `${localInput(date)}:${pad(date.getSeconds())}${offset}`;
}

/** A datetime-local value (no zone: the browser's own) as a Date, or null when empty. */
function fromInput(value) {
  if (!value) return null;
  const date = new Date(value); // date-time forms without an offset are local time
  return Number.isNaN(date.getTime()) ? null : date;
}

const shown = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function when(iso) {
  return shown.format(new Date(iso));
}

// -- the role dropdown (pingableRoles, live through guildRolesChanged) -------------------------

function showRoles(roles) {
  fill($("role"), roles.map((role) => [role.id, role.name]), true);
  $("role").dataset.count = String(roles.length);
}

function logChange(change) {
  const item = document.createElement("li");
  const role = change.pingableRoles.find((r) => r.id === change.roleId);
  const what = change.roleId ? ` ${role ? `"${role.name}"` : `role ${change.roleId}`}` : "";
  item.textContent = `${change.kind}${what} (version ${change.version})`;
  $("events").prepend(item);
  while ($("events").children.length > 20) $("events").lastChild.remove();
}

const ROLES = "id name";
const CHANGES = `subscription Changes($g: ID!, $c: ID, $since: String) {
  guildRolesChanged(guildId: $g, channelId: $c, since: $since) {
    kind roleId version eventId pingableRoles { ${ROLES} }
  }
}`;
// "0-0" is never kept in a guild's stream, so the first message is the full current state
// (GUILD_RESYNCED with the roles; RESYNCED for polls, after which the list is read).
const CURRENT = "0-0";

// -- polls ------------------------------------------------------------------------------------

const POLL = `id guildId channelId name question options { position text emoji } status opensAt closesAt
  timezone anonymous maxChoices resultsVisibility messageUrl version problem { code message }
  results { voters version options { position votes } } myBallot`;
const POLLS = `query Polls($g: ID!) { polls(guildId: $g, first: 50) { nodes { ${POLL} } } }`;
const CREATE = `mutation Create($input: CreatePollInput!) { createPoll(input: $input) { ${POLL} } }`;
const VOTE = `mutation Vote($p: ID!, $pos: [Int!]!) { castVote(pollId: $p, positions: $pos) { ${POLL} } }`;
const RETRACT = `mutation Retract($p: ID!) { retractVote(pollId: $p) { ${POLL} } }`;
const UPDATES = `subscription Updates($g: ID!, $since: String) {
  pollUpdated(guildId: $g, since: $since) { kind pollId eventId poll { ${POLL} } }
}`;

const STATUS_TEXT = { SCHEDULED: "scheduled", OPEN: "open", CLOSED: "closed", CANCELLED: "cancelled" };

/** Whether poll ``a`` is older than ``b`` (the same poll): its version, then its results'. */
function older(a, b) {
  if (a.version !== b.version) return a.version < b.version;
  return (a.results?.version ?? -1) < (b.results?.version ?? -1);
}

/** Keep ``poll`` unless what is shown is newer (an answer and an event may cross). */
function keep(poll) {
  if (poll.guildId !== state.guildId) return;
  const known = state.polls.get(poll.id);
  if (known && older(poll, known)) return;
  state.polls.set(poll.id, poll);
  renderPoll(poll);
}

function forget(pollId) {
  state.polls.delete(pollId);
  state.drafts.delete(pollId);
  document.querySelector(`.poll[data-poll-id="${CSS.escape(pollId)}"]`)?.remove();
  placePolls();
}

function byNewest(a, b) {
  const [x, y] = [BigInt(a), BigInt(b)];
  return x === y ? 0 : x > y ? -1 : 1;
}

/** The polls' articles in order, newest first; articles in place are not moved (focus stays). */
function placePolls() {
  const list = $("polls");
  const ids = [...state.polls.keys()].sort(byNewest);
  ids.forEach((id, index) => {
    const article = list.querySelector(`.poll[data-poll-id="${CSS.escape(id)}"]`);
    if (article && list.children[index] !== article) list.insertBefore(article, list.children[index] ?? null);
  });
  for (const article of [...list.children]) {
    if (!state.polls.has(article.dataset.pollId)) article.remove();
  }
  $("polls-empty").hidden = state.polls.size > 0;
}

function optionLabel(option) {
  return option.emoji ? `${option.emoji} ${option.text}` : option.text;
}

/** What decides an article's controls; anything else is updated in place. */
function shape(poll) {
  return JSON.stringify([poll.status, poll.maxChoices, poll.options, poll.results === null]);
}

function buildPoll(poll) {
  const base = `poll-${poll.id}`;
  const article = element("article", { class: "poll", "data-poll-id": poll.id, "aria-labelledby": `${base}-name` });
  article.dataset.shape = shape(poll);
  article.append(
    element(
      "header",
      {},
      element("h3", { id: `${base}-name`, class: "poll-name" }),
      element("span", { class: "status", "data-status": poll.status, text: STATUS_TEXT[poll.status] ?? poll.status }),
    ),
    element("p", { class: "question" }),
    element("p", { class: "when" }),
    element("p", { class: "posted" }),
    element("p", { class: "problem", role: "alert" }),
  );

  if (poll.status === "OPEN") {
    const legend = poll.maxChoices > 1 ? `Your vote (up to ${poll.maxChoices})` : "Your vote";
    const group = element("fieldset", { class: "vote" }, element("legend", { text: legend }));
    if (poll.maxChoices > 1) {
      for (const option of poll.options) {
        const box = element("input", {
          type: "checkbox",
          value: option.position,
          "data-position": option.position,
          onchange: () => {
            const ticked = [...group.querySelectorAll("input:checked")].map((b) => Number(b.value));
            state.drafts.set(poll.id, new Set(ticked));
          },
        });
        group.append(element("label", { class: "inline" }, box, ` ${optionLabel(option)}`));
      }
      group.append(
        element("button", {
          type: "button",
          class: "send-vote",
          text: "Vote",
          onclick: () => {
            const ticked = [...group.querySelectorAll("input:checked")].map((b) => Number(b.value));
            vote(poll.id, ticked);
          },
        }),
      );
    } else {
      for (const option of poll.options) {
        group.append(
          element("button", {
            type: "button",
            class: "choice",
            "data-position": option.position,
            "aria-pressed": "false",
            text: optionLabel(option),
            onclick: () => vote(poll.id, [option.position]),
          }),
        );
      }
    }
    article.append(group);
  }
  const ballot = element("p", { class: "ballot" }, element("span", { class: "my-ballot" }));
  if (poll.status === "OPEN") {
    ballot.append(
      " ",
      element("button", { type: "button", class: "retract", text: "Take my vote back", onclick: () => retract(poll.id) }),
    );
  }
  article.append(ballot, element("p", { class: "vote-error field-error", role: "alert" }));

  if (poll.results === null) {
    article.append(element("p", { class: "results-hidden note", text: "Results are hidden until the poll closes." }));
  } else {
    const results = element("ul", { class: "results", "aria-label": `Results of ${poll.name}` });
    for (const option of poll.options) {
      results.append(
        element(
          "li",
          { class: "result", "data-position": option.position, "data-votes": 0 },
          element("span", { class: "result-label", text: optionLabel(option) }),
          element("span", { class: "result-count" }),
          element("span", { class: "bar", "aria-hidden": "true" }, element("span", { class: "fill" })),
        ),
      );
    }
    article.append(results, element("p", { class: "voters" }));
  }
  return article;
}

/** Everything that may change without the controls changing. */
function updatePoll(article, poll) {
  article.querySelector(".poll-name").textContent = poll.name;
  article.querySelector(".question").textContent = poll.question;
  const opens = poll.status === "SCHEDULED" ? `Opens ${when(poll.opensAt)}` : `Opened ${when(poll.opensAt)}`;
  const closes = poll.status === "CLOSED" || poll.status === "CANCELLED" ? "ended" : "closes";
  article.querySelector(".when").textContent = `${opens} · ${closes} ${when(poll.closesAt)}`;
  article.dataset.status = poll.status;

  const posted = article.querySelector(".posted");
  if (poll.messageUrl && /^https?:\/\//.test(poll.messageUrl)) {
    const link = posted.querySelector("a") ?? element("a", { class: "message-link", text: "See it in Discord" });
    link.href = poll.messageUrl;
    if (!link.isConnected) posted.replaceChildren(link);
  } else {
    posted.textContent = poll.status === "SCHEDULED" ? "Posted when it opens." : "Not posted.";
  }
  article.querySelector(".problem").textContent = poll.problem ? `Discord: ${poll.problem.message}` : "";

  const ballot = poll.myBallot ?? [];
  const chosen = poll.options.filter((o) => ballot.includes(o.position)).map(optionLabel);
  article.querySelector(".my-ballot").textContent = chosen.length ? `You voted: ${chosen.join(", ")}.` : "You have not voted.";
  article.dataset.myBallot = ballot.join(",");
  const retractButton = article.querySelector(".retract");
  if (retractButton) retractButton.hidden = !poll.myBallot;
  for (const button of article.querySelectorAll("button.choice")) {
    button.setAttribute("aria-pressed", String(ballot.includes(Number(button.dataset.position))));
  }
  const draft = state.drafts.get(poll.id);
  for (const box of article.querySelectorAll(".vote input[type=checkbox]")) {
    box.checked = (draft ?? new Set(ballot)).has(Number(box.value));
  }

  if (poll.results) {
    const { voters } = poll.results;
    const votes = new Map(poll.results.options.map((o) => [o.position, o.votes]));
    for (const row of article.querySelectorAll(".result")) {
      const count = votes.get(Number(row.dataset.position)) ?? 0;
      const share = voters ? Math.round((count / voters) * 100) : 0;
      row.dataset.votes = String(count);
      row.querySelector(".result-count").textContent = `${count} ${count === 1 ? "vote" : "votes"} (${share}%)`;
      row.querySelector(".fill").style.width = `${share}%`;
    }
    article.querySelector(".voters").textContent = `${voters} ${voters === 1 ? "person" : "people"} voted.`;
  }
}

function renderPoll(poll) {
  const list = $("polls");
  let article = list.querySelector(`.poll[data-poll-id="${CSS.escape(poll.id)}"]`);
  if (!article || article.dataset.shape !== shape(poll)) {
    const fresh = buildPoll(poll);
    if (article) article.replaceWith(fresh);
    else list.append(fresh);
    article = fresh;
  }
  updatePoll(article, poll);
  placePolls();
}

function voteError(pollId, text) {
  const slot = document.querySelector(`.poll[data-poll-id="${CSS.escape(pollId)}"] .vote-error`);
  if (slot) slot.textContent = text;
}

async function vote(pollId, positions) {
  voteError(pollId, "");
  try {
    const { castVote } = await query(VOTE, { p: pollId, pos: positions });
    state.drafts.delete(pollId);
    keep(castVote);
  } catch (error) {
    voteError(pollId, error.message);
  }
}

async function retract(pollId) {
  voteError(pollId, "");
  try {
    const { retractVote } = await query(RETRACT, { p: pollId });
    state.drafts.delete(pollId);
    keep(retractVote);
  } catch (error) {
    voteError(pollId, error.message);
  }
}

// Replacing the list after a RESYNCED: the events that arrive while it is read are applied again
// on top of what the read returns (each only where it is newer).
let loading = null; // { guildId, events: [] } while a read is under way

async function loadPolls() {
  const guildId = state.guildId;
  const mine = { guildId, events: [] };
  loading = mine;
  try {
    const { polls } = await query(POLLS, { g: guildId });
    if (loading !== mine || state.guildId !== guildId) return;
    state.polls = new Map();
    $("polls").replaceChildren();
    for (const poll of polls.nodes) keep(poll);
    for (const event of mine.events) applyPollEvent(event);
    placePolls();
  } catch (error) {
    if (loading === mine) say(`Cannot read the polls: ${error.message}`);
  } finally {
    if (loading === mine) loading = null;
  }
}

function applyPollEvent(event) {
  if (event.poll) keep(event.poll);
  else if (event.pollId) forget(event.pollId); // deleted, or no longer readable
}

function onPollUpdated(event) {
  if (event.kind === "RESYNCED" && !event.pollId) return loadPolls();
  if (loading?.guildId === state.guildId) loading.events.push(event);
  applyPollEvent(event);
}

// -- the form ----------------------------------------------------------------------------------

let optionIds = 0;

function optionRows() {
  return [...$("options").querySelectorAll(".option-row")];
}

function numberOptions() {
  const rows = optionRows();
  rows.forEach((row, index) => {
    row.querySelector(".number").textContent = String(index + 1);
    row.querySelector(".remove-option").setAttribute("aria-label", `Remove option ${index + 1}`);
    row.querySelector(".remove-option").disabled = rows.length <= MIN_OPTIONS;
  });
  $("add-option").disabled = rows.length >= MAX_OPTIONS;
  $("max-choices").max = String(Math.max(rows.length, 1));
}

function addOption(text = "") {
  if (optionRows().length >= MAX_OPTIONS) return null;
  const row = $("option-row").content.firstElementChild.cloneNode(true);
  const id = `option-${++optionIds}`;
  const [textLabel, emojiLabel] = row.querySelectorAll("label");
  const error = row.querySelector(".field-error");
  error.id = `${id}-error`;
  textLabel.htmlFor = `${id}-text`;
  emojiLabel.htmlFor = `${id}-emoji`;
  Object.assign(row.querySelector(".option-text"), { id: `${id}-text`, value: text });
  row.querySelector(".option-emoji").id = `${id}-emoji`;
  for (const input of row.querySelectorAll("input")) input.setAttribute("aria-describedby", error.id);
  row.querySelector(".remove-option").addEventListener("click", () => {
    if (optionRows().length <= MIN_OPTIONS) return;
    row.remove();
    numberOptions();
    optionRows().at(-1)?.querySelector(".option-text").focus();
  });
  $("options").append(row);
  numberOptions();
  return row;
}

function resetOptions() {
  $("options").replaceChildren();
  for (let i = 0; i < MIN_OPTIONS; i += 1) addOption();
}

function opensLater() {
  return document.querySelector('input[name="opens"]:checked')?.value === "at";
}

/** Unless chosen by hand, the poll closes an hour after it opens. */
function defaultClosing() {
  if (state.closesTouched) return;
  const opens = (opensLater() && fromInput($("opens-at").value)) || new Date();
  $("closes-at").value = localInput(new Date(opens.getTime() + 60 * 60 * 1000));
}

function clearErrors() {
  for (const slot of document.querySelectorAll("#poll .field-error")) slot.textContent = "";
  for (const field of document.querySelectorAll("#poll [aria-invalid]")) field.removeAttribute("aria-invalid");
}

/** Show an API error next to the field its extensions.field names (the form's top otherwise). */
function showError(error, sentOptions) {
  const field = error.extensions?.field ?? "";
  let slot = null;
  let input = null;
  const option = /^options\[(\d+)\]\.(text|emoji)$/.exec(field);
  if (option && sentOptions[Number(option[1])]) {
    const row = sentOptions[Number(option[1])];
    slot = row.querySelector(".field-error");
    input = row.querySelector(option[2] === "text" ? ".option-text" : ".option-emoji");
  } else if (field) {
    slot = document.querySelector(`#poll [data-error-for="${CSS.escape(field)}"]`);
    const described = `[aria-describedby~="${CSS.escape(slot?.id ?? "")}"]`;
    input = slot ? document.querySelector(`#poll :is(input, select, textarea)${described}`) : null;
  }
  slot ??= $("form-error");
  slot.textContent = [slot.textContent, error.message].filter(Boolean).join(" ");
  input?.setAttribute("aria-invalid", "true");
  return input;
}

async function createPoll(event) {
  event.preventDefault();
  clearErrors();
  $("created").textContent = "";
  // Blank option rows are left out: the API counts what remains.
  const sentOptions = optionRows().filter((row) => row.querySelector(".option-text").value.trim());
  const input = {
    guildId: state.guildId,
    channelId: $("channel").value,
    name: $("name").value,
    question: $("question").value,
    options: sentOptions.map((row) => ({
      text: row.querySelector(".option-text").value,
      emoji: row.querySelector(".option-emoji").value.trim() || null,
    })),
    maxChoices: Number($("max-choices").value) || 1,
    timezone: timeZone,
    anonymous: $("anonymous").checked,
    resultsVisibility: $("visibility").value,
  };
  const ping = $("ping-open").checked || $("ping-close").checked;
  if (ping) {
    input.pingRoleId = $("role").value || null;
    input.pingOnOpen = $("ping-open").checked;
    input.pingOnClose = $("ping-close").checked;
  }
  let opens = new Date();
  if (opensLater()) {
    opens = fromInput($("opens-at").value);
    if (!opens) {
      showError({ message: "Choose when the poll opens.", extensions: { field: "opensAt" } }, sentOptions)?.focus();
      return;
    }
    input.opensAt = withOffset(opens);
  }
  defaultClosing();
  const closes = fromInput($("closes-at").value);
  if (!closes) {
    showError({ message: "Choose when the poll closes.", extensions: { field: "closesAt" } }, sentOptions)?.focus();
    return;
  }
  input.closesAt = withOffset(closes);

  $("create").disabled = true;
  try {
    const { createPoll: poll } = await query(CREATE, { input });
    keep(poll);
    $("created").textContent = `Created "${poll.name}"; ${poll.status === "SCHEDULED" && opensLater() ? "it is posted when it opens" : "it is posted in a moment"}.`;
    $("name").value = "";
    $("question").value = "";
    resetOptions();
    state.closesTouched = false;
    defaultClosing();
  } catch (error) {
    const errors = error instanceof GraphQLErrors ? error.errors : [{ message: error.message }];
    const first = errors.map((e) => showError(e, sentOptions)).find(Boolean);
    first?.focus();
  } finally {
    updateCreateButton();
  }
}

function updateCreateButton() {
  const may = state.manages.has(state.guildId);
  $("create").disabled = !may;
  $("manage-note").hidden = may || !state.guildId;
}

// -- live: one client, two subscriptions ---------------------------------------------------------

if (!window.graphqlWs) {
  setConnection("error", "no client");
  say("The graphql-ws client is missing: run `npm ci --prefix frontend-stub` (./scripts/run does).");
  throw new Error("graphql-ws is not loaded");
}

let client = null;

/** One subscription, made again (with `since`) after a drop, a new choice or an error. */
class Feed {
  constructor(document, variables, onData) {
    this.document = document;
    this.variables = variables; // () => variables, read at each start
    this.onData = onData;
    this.lastEventId = null;
    this.unsubscribe = null;
    this.token = 0;
    this.retries = 0;
  }

  reset() {
    this.lastEventId = null;
    this.retries = 0;
  }

  stop() {
    this.token += 1;
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  start() {
    this.stop();
    const token = this.token;
    const mine = () => token === this.token; // a newer choice or reconnection replaced this one
    const variables = { ...this.variables(), since: this.lastEventId ?? CURRENT };
    this.unsubscribe = client.subscribe(
      { query: this.document, variables },
      {
        next: ({ data, errors }) => {
          if (!mine()) return;
          if (errors?.length) return say(errors.map((e) => e.message).join(" "));
          const [message] = Object.values(data);
          if (message.eventId) this.lastEventId = message.eventId;
          this.retries = 0;
          this.onData(message);
        },
        error: (error) => {
          if (!mine()) return;
          const text = Array.isArray(error) ? error.map((e) => e.message).join(" ") : "Live updates stopped.";
          say(`${text} Retrying…`);
          this.retryLater(token);
        },
        complete: () => {
          if (mine()) this.retryLater(token);
        },
      },
    );
  }

  retryLater(token) {
    this.retries += 1;
    const wait = Math.min(500 * 2 ** this.retries, 10_000);
    setTimeout(() => {
      if (token === this.token) this.start();
    }, wait);
  }
}

const roleFeed = new Feed(CHANGES, () => ({ g: state.guildId, c: state.channelId || null }), (change) => {
  showRoles(change.pingableRoles);
  logChange(change);
  say("");
});

const pollFeed = new Feed(UPDATES, () => ({ g: state.guildId }), onPollUpdated);

function connect() {
  client = window.graphqlWs.createClient({
    url: socketUrl,
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: async (retries) => new Promise((done) => setTimeout(done, Math.min(500 * 2 ** retries, 5_000))),
    on: {
      connecting: () => setConnection(state.everConnected ? "reconnecting" : "connecting"),
      connected: (_socket, _payload, wasRetry) => {
        state.everConnected = true;
        setConnection("live");
        // After a drop, ask for what was missed since the last event seen (or for the whole
        // current state, if none was seen).
        if (wasRetry && state.guildId) {
          roleFeed.start();
          pollFeed.start();
        }
      },
      closed: (event) => {
        // Made again, with `since`, once reconnected.
        roleFeed.stop();
        pollFeed.stop();
        if ([4400, 4401, 4409, 4429, 1011].includes(event?.code)) {
          setConnection("error", "disconnected");
          say(`The server closed the connection (${event.code} ${event.reason}); reload the page.`);
        } else {
          setConnection("reconnecting");
        }
      },
    },
  });
}

function textChannels(guild) {
  return (guild?.channels ?? []).filter((c) => c.type === 0 || c.type === 5);
}

function chooseChannel() {
  state.channelId = $("channel").value;
  roleFeed.reset(); // another channel: start from its current list
  $("role").replaceChildren();
  roleFeed.start();
}

function chooseGuild() {
  state.guildId = $("guild").value;
  const guild = state.guilds.find((g) => g.id === state.guildId);
  fill($("channel"), textChannels(guild).map((c) => [c.id, `#${c.name}`]), true);
  updateCreateButton();
  loading = null;
  state.polls = new Map();
  state.drafts = new Map();
  $("polls").replaceChildren();
  placePolls();
  pollFeed.reset(); // its first message (RESYNCED) reads the guild's polls
  pollFeed.start();
  chooseChannel();
}

async function signedIn() {
  const { viewer } = await query("{ viewer { name guilds { id canManage } } }");
  $("login").hidden = Boolean(viewer);
  $("logout").hidden = !viewer;
  $("viewer").textContent = viewer ? viewer.name : "";
  state.manages = new Set((viewer?.guilds ?? []).filter((g) => g.canManage).map((g) => g.id));
  return Boolean(viewer);
}

async function logOut() {
  await fetch("/auth/logout", { method: "POST" });
  location.reload();
}

async function start() {
  $("timezone").textContent = timeZone;
  resetOptions();
  defaultClosing();
  updateCreateButton();
  try {
    if (!(await signedIn())) {
      setConnection("signed-out", "signed out");
      return say("Log in with Discord to create polls and vote in your guilds.");
    }
    connect();
    const data = await query("{ botGuilds { id name channels { id name type } } }");
    state.guilds = data.botGuilds;
    if (!state.guilds.length) return say("The bot is in none of your guilds yet (is polly bot running?).");
    fill($("guild"), state.guilds.map((g) => [g.id, g.name]), false);
    chooseGuild();
  } catch (error) {
    say(`Cannot load guilds: ${error.message}`);
  }
}

$("logout").addEventListener("click", logOut);
$("guild").addEventListener("change", chooseGuild);
$("channel").addEventListener("change", chooseChannel);
$("poll").addEventListener("submit", createPoll);
$("add-option").addEventListener("click", () => addOption()?.querySelector(".option-text").focus());
$("closes-at").addEventListener("input", () => {
  state.closesTouched = true;
});
$("opens-at").addEventListener("input", defaultClosing);
for (const radio of document.querySelectorAll('input[name="opens"]')) {
  radio.addEventListener("change", () => {
    $("opens-at").disabled = !opensLater();
    if (opensLater() && !$("opens-at").value) $("opens-at").value = localInput(new Date(Date.now() + 10 * 60 * 1000));
    defaultClosing();
  });
}
start();
