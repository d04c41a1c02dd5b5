// Drives Debian's chromium with playwright-core for tests/integration/js/browser.py.
// One JSON command per stdin line: {"id", "op", ...}; one JSON reply per stdout line:
// {"reply": id, "ok": true, "value": ...} or {"reply": id, "ok": false, "error": "..."}.
// Pages are named, so a test can hold several (two users in two browser contexts).
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "..", "interop", "package.json"));
const { chromium } = require("playwright-core");

const executablePath = process.env.HERO_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const pages = new Map();
const logs = new Map();

function page(name) {
  const found = pages.get(name);
  if (!found) throw new Error(`no page named ${name}`);
  return found;
}

function locate(command) {
  let locator = page(command.name).locator(command.selector);
  if (command.text != null) locator = locator.filter({ hasText: command.text });
  return locator.first();
}

const ops = {
  async open(command) {
    const context = await browser.newContext({ viewport: command.viewport ?? { width: 1280, height: 800 } });
    const created = await context.newPage();
    const lines = [];
    created.on("console", (message) => lines.push(`${message.type()}: ${message.text()}`));
    created.on("pageerror", (error) => lines.push(`pageerror: ${error.message}`));
    pages.set(command.name, created);
    logs.set(command.name, lines);
    await created.goto(command.url);
    return null;
  },
  async click(command) {
    await locate(command).click({ timeout: command.ms });
    return null;
  },
  async fill(command) {
    await locate(command).fill(command.value, { timeout: command.ms });
    return null;
  },
  async type(command) {
    await locate(command).pressSequentially(command.value, { timeout: command.ms });
    return null;
  },
  async press(command) {
    await locate(command).press(command.key, { timeout: command.ms });
    return null;
  },
  async select(command) {
    await locate(command).selectOption(command.value, { timeout: command.ms });
    return null;
  },
  async check(command) {
    await locate(command).check({ timeout: command.ms });
    return null;
  },
  async waitFor(command) {
    await locate(command).waitFor({ state: command.state ?? "visible", timeout: command.ms });
    return null;
  },
  async attribute(command) {
    return locate(command).getAttribute(command.attribute, { timeout: command.ms });
  },
  async text(command) {
    return locate(command).textContent({ timeout: command.ms });
  },
  async count(command) {
    return page(command.name).locator(command.selector).count();
  },
  async screenshot(command) {
    await page(command.name).screenshot({ path: command.path, fullPage: false });
    return null;
  },
  async log(command) {
    return logs.get(command.name) ?? [];
  },
  async close(command) {
    await page(command.name).context().close();
    pages.delete(command.name);
    return null;
  },
};

function write(data) {
  process.stdout.write(JSON.stringify(data) + "\n");
}

write({ event: "ready" });
const input = createInterface({ input: process.stdin });
for await (const line of input) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  if (command.op === "exit") break;
  const op = ops[command.op];
  try {
    if (!op) throw new Error(`unknown op ${command.op}`);
    write({ reply: command.id, ok: true, value: await op(command) });
  } catch (error) {
    write({ reply: command.id, ok: false, error: String(error?.message ?? error) });
  }
}
await browser.close();
process.exit(0);
