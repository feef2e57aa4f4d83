// The live role dropdown: pingableRoles fills it, guildRolesChanged keeps it right.
// graphql-ws (loaded as a browser build by index.html) speaks graphql-transport-ws.
// Signed in with Discord (the session cookie goes with every request and the WebSocket), the
// page lists the guilds the user shares with the bot.

const $ = (id) => document.getElementById(id);
const endpoint = new URL("/graphql", location.href);
const socketUrl = endpoint.href.replace(/^http/, "ws");

const state = {
  guilds: [],
  guildId: "",
  channelId: "",
  lastEventId: null,
  unsubscribe: null,
  everConnected: false,
  retries: 0,
};

function setConnection(name, text) {
  const badge = $("connection");
  badge.dataset.state = name;
  badge.textContent = text ?? name;
}

function say(text) {
  $("message").textContent = text ?? "";
}

async function query(document, variables) {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/graphql-response+json" },
    body: JSON.stringify({ query: document, variables }),
  });
  const body = await response.json();
  if (body.errors?.length) throw new Error(body.errors.map((e) => e.message).join(" "));
  return body.data;
}

function fill(select, items, keep) {
  const previous = keep ? select.value : "";
  select.replaceChildren(...items.map(([value, label]) => new Option(label, value)));
  if (previous && items.some(([value]) => value === previous)) select.value = previous;
}

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
// "0-0" is never kept in a guild's stream, so the first message is the full current list.
const CURRENT = "0-0";

if (!window.graphqlWs) {
  setConnection("error", "no client");
  say("The graphql-ws client is missing: run `npm ci --prefix frontend-stub` (./scripts/run does).");
  throw new Error("graphql-ws is not loaded");
}

let client = null;

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
        // list, if none was seen).
        if (wasRetry && state.guildId) subscribe();
      },
      closed: (event) => {
        // Made again, with `since`, once reconnected.
        state.unsubscribe?.();
        state.unsubscribe = null;
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

let subscriptions = 0;

function subscribe() {
  state.unsubscribe?.();
  const token = ++subscriptions;
  const variables = { g: state.guildId, c: state.channelId || null, since: state.lastEventId ?? CURRENT };
  const mine = () => token === subscriptions; // a newer choice or reconnection replaced this one
  state.unsubscribe = client.subscribe(
    { query: CHANGES, variables },
    {
      next: ({ data, errors }) => {
        if (!mine()) return;
        if (errors?.length) return say(errors.map((e) => e.message).join(" "));
        const change = data.guildRolesChanged;
        if (change.eventId) state.lastEventId = change.eventId;
        showRoles(change.pingableRoles);
        logChange(change);
        say("");
      },
      error: (error) => {
        if (!mine()) return;
        const text = Array.isArray(error) ? error.map((e) => e.message).join(" ") : "Live updates stopped.";
        say(`${text} Retrying…`);
        retryLater(token);
      },
      complete: () => {
        if (mine()) retryLater(token);
      },
    },
  );
}

function retryLater(token) {
  state.retries = (state.retries ?? 0) + 1;
  const wait = Math.min(500 * 2 ** state.retries, 10_000);
  setTimeout(() => {
    if (token === subscriptions) subscribe();
  }, wait);
}

function choose() {
  state.guildId = $("guild").value;
  const guild = state.guilds.find((g) => g.id === state.guildId);
  const channels = (guild?.channels ?? []).filter((c) => c.type === 0 || c.type === 5);
  fill($("channel"), [["", "(any channel)"], ...channels.map((c) => [c.id, `#${c.name}`])], true);
  state.channelId = $("channel").value;
  state.lastEventId = null; // another guild or channel: start from its current list
  state.retries = 0;
  $("role").replaceChildren();
  subscribe();
}

async function signedIn() {
  const { viewer } = await query("{ viewer { name } }");
  $("login").hidden = Boolean(viewer);
  $("logout").hidden = !viewer;
  $("viewer").textContent = viewer ? viewer.name : "";
  return Boolean(viewer);
}

async function logOut() {
  await fetch("/auth/logout", { method: "POST" });
  location.reload();
}

async function start() {
  try {
    if (!(await signedIn())) {
      setConnection("signed-out", "signed out");
      return say("Log in with Discord to see the roles of your guilds.");
    }
    connect();
    const data = await query("{ botGuilds { id name channels { id name type } } }");
    state.guilds = data.botGuilds;
    if (!state.guilds.length) return say("The bot is in none of your guilds yet (is polly bot running?).");
    fill($("guild"), state.guilds.map((g) => [g.id, g.name]), false);
    choose();
  } catch (error) {
    say(`Cannot load guilds: ${error.message}`);
  }
}

$("logout").addEventListener("click", logOut);
$("guild").addEventListener("change", choose);
$("channel").addEventListener("change", choose);
start();
