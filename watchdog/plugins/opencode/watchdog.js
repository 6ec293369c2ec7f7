// watchdog for OpenCode: every tool call is checked by `watchdog hook --harness opencode`.
//
// Why a plugin: OpenCode has no command hooks, only in-process plugins (this file, loaded from
// .opencode/plugins/ or ~/.config/opencode/plugins/). It sends each call to the watchdog
// command in Cupcake's OpenCode event shape, one JSON object on stdin, and applies the one
// JSON answer on stdout (see watchdog/harnesses/opencode.py):
//   tool.execute.before -> PreToolUse. "deny", "block" and "ask" throw an Error whose message
//     is the reason: OpenCode skips the tool and the model reads the message as its result.
//     OpenCode cannot ask a person from a plugin (permission.ask is never called), so "ask"
//     blocks too. "updated_args" is merged into output.args IN PLACE: OpenCode keeps its own
//     reference to that object, so a reassigned output.args would be ignored. "context" is kept
//     and appended to the tool's output once it has run: the model's only channel here.
//   tool.execute.after -> PostToolUse. Never stops anything (the tool has run); a reason or
//     context in the answer is appended to the output the model reads.
//   "message" in an answer is for the person: it is printed on stderr after "[watchdog]".
//
// When the command cannot be started, exits non-zero, times out or prints no JSON answer, the
// call is allowed with a "[watchdog]" line on stderr (fail open, the default), or blocked by a
// throw (fail closed) when FAIL_CLOSED below is true (`watchdog init --fail-closed`), or
// WATCHDOG_OPENCODE_FAIL_CLOSED=1, or WATCHDOG_ON_ERROR=closed. Exit code 2 always blocks: the
// command says so when it fails closed before it could read the event. An answer whose
// decision is unknown blocks, as in Cupcake's plugin.
// Environment: WATCHDOG_OPENCODE_TIMEOUT_MS (default 30000, per call),
// WATCHDOG_SERVE_URL with WATCHDOG_SERVE_TOKEN (POST the event to `watchdog serve` at
// URL/hook/opencode with `Authorization: Bearer TOKEN` first; its answer is read like the
// command's, with X-Watchdog-Exit as the exit code; when it cannot answer, the command runs).
// Only the plugin function is exported: OpenCode calls every export of a plugin file.
import { spawn } from "node:child_process"

const COMMAND = "watchdog hook --harness opencode" // watchdog:command
const FAIL_CLOSED = false // watchdog:fail-closed
const DEFAULT_TIMEOUT_MS = 30000
const TAG = "[watchdog]"
const BLOCKING = new Set(["deny", "block", "ask"])
const MAX_PENDING = 256 // context owed to calls whose after-hook never came (a failed tool)
const warned = new Set()

function log(text) {
  console.error(`${TAG} ${text}`)
}

function warnOnce(key, text) {
  if (warned.has(key)) return
  warned.add(key)
  log(text)
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value)
}

function clip(text, limit = 300) {
  const s = String(text ?? "").trim()
  return s.length <= limit ? s : `${s.slice(0, limit)}...`
}

function failClosed() {
  const env = process.env
  return FAIL_CLOSED || /^(1|true|yes|on)$/i.test(env.WATCHDOG_OPENCODE_FAIL_CLOSED ?? "") ||
    /closed$/i.test(env.WATCHDOG_ON_ERROR ?? "")
}

function timeoutMs() {
  const n = Number(process.env.WATCHDOG_OPENCODE_TIMEOUT_MS)
  return Number.isFinite(n) && n > 0 ? n : DEFAULT_TIMEOUT_MS
}

// Run COMMAND through the shell in its own process group, so a timeout kills its children too.
function runCommand(event, cwd, limit) {
  return new Promise((resolve) => {
    let child
    let settled = false
    let timer
    const finish = (result) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(result)
    }
    try {
      child = process.platform === "win32"
        ? spawn(COMMAND, { cwd, shell: true, windowsHide: true, stdio: "pipe" })
        : spawn("/bin/sh", ["-c", COMMAND], { cwd, detached: true, stdio: "pipe" })
    } catch (err) {
      finish({ problem: `cannot start ${COMMAND}: ${err?.message ?? err}` })
      return
    }
    let stdout = ""
    let stderr = ""
    timer = setTimeout(() => {
      try {
        if (process.platform === "win32") child.kill("SIGKILL")
        else process.kill(-child.pid, "SIGKILL")
      } catch {}
      finish({ problem: `timed out after ${limit} ms` })
    }, limit)
    child.stdout.on("data", (d) => { stdout += d })
    child.stderr.on("data", (d) => { stderr += d })
    child.on("error", (err) => {
      finish({ problem: `cannot start ${COMMAND}: ${err?.message ?? err}` })
    })
    child.on("close", (code) => finish({ code, stdout, stderr }))
    child.stdin.on("error", () => {})
    child.stdin.end(JSON.stringify(event))
  })
}

// One answer object with a string decision, or the problem with what was printed.
function parseAnswer(text) {
  let answer
  try {
    answer = JSON.parse(text)
  } catch {
    return { problem: `the answer is not JSON: ${JSON.stringify(clip(text, 200))}` }
  }
  if (!isObject(answer) || typeof answer.decision !== "string") {
    return { problem: `the answer has no decision: ${JSON.stringify(clip(text, 200))}` }
  }
  return { answer }
}

function readResult(res) {
  if (res.problem) return res
  if (res.code === 2) {
    const reason = clip(res.stderr, 2000) || "watchdog blocked this call (exit code 2)"
    return { answer: { decision: "block", reason } }
  }
  if (res.code !== 0) {
    const why = clip(res.stderr)
    return { problem: `the hook command exited with code ${res.code}${why ? `: ${why}` : ""}` }
  }
  return parseAnswer(res.stdout)
}

// `watchdog serve`, when configured: its answer, or undefined to run the command instead.
async function askServe(event, limit) {
  const url = process.env.WATCHDOG_SERVE_URL
  const token = process.env.WATCHDOG_SERVE_TOKEN
  if (!url || !token) return undefined
  try {
    const res = await fetch(`${url.replace(/\/+$/, "")}/hook/opencode`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(event),
      signal: AbortSignal.timeout(limit),
    })
    // 200: the hook's stdout; 422: it would have exited non-zero (X-Watchdog-Exit says how)
    let parsed = { problem: `HTTP ${res.status}` }
    if (res.status === 200 || res.status === 422) {
      const code = Number(res.headers.get("x-watchdog-exit") ?? (res.status === 200 ? 0 : 1))
      const stderr = res.headers.get("x-watchdog-stderr") ?? ""
      parsed = readResult({ code, stdout: await res.text(), stderr })
    }
    if (!parsed.problem) return parsed
    warnOnce(`serve:${parsed.problem}`,
             `watchdog serve at ${url} did not answer (${parsed.problem}); using the command`)
  } catch (err) {
    warnOnce("serve:down",
             `watchdog serve at ${url} is unreachable (${err?.message ?? err}); using the command`)
  }
  return undefined
}

async function decide(event, cwd) {
  try {
    const limit = timeoutMs()
    return (await askServe(event, limit)) ?? readResult(await runCommand(event, cwd, limit))
  } catch (err) {
    return { problem: `the plugin failed: ${err?.message ?? err}` }
  }
}

function baseEvent(name, input, cwd, args) {
  const event = { hook_event_name: name, session_id: input?.sessionID ?? "", cwd,
                  tool: input?.tool ?? "", args: isObject(args) ? args : {} }
  if (input?.callID) event.call_id = input.callID
  return event
}

function resultOf(output) {
  const exit = output?.metadata?.exit
  const result = { success: typeof exit !== "number" || exit === 0 }
  if (typeof output?.output === "string") result.output = output.output
  if (typeof exit === "number") result.exit_code = exit
  return result
}

function strings(value) {
  return Array.isArray(value) ? value.filter((s) => typeof s === "string" && s) : []
}

export const WatchdogPlugin = async (ctx) => {
  const cwd = ctx?.directory || process.cwd()
  const owed = new Map() // callID -> context lines for the tool's output

  return {
    "tool.execute.before": async (input, output) => {
      const args = output?.args
      const event = baseEvent("PreToolUse", input, cwd, args)
      const { answer, problem } = await decide(event, cwd)
      if (problem) {
        if (failClosed()) {
          throw new Error(`watchdog could not check this ${event.tool} call (${problem}), and ` +
                          "it fails closed, so the call was blocked. Tell the user; do not " +
                          "retry it another way.")
        }
        log(`could not check this ${event.tool} call (${problem}); allowed it (fail-open). ` +
            "Set WATCHDOG_OPENCODE_FAIL_CLOSED=1 to block instead.")
        return
      }
      if (typeof answer.message === "string" && answer.message) log(answer.message)
      if (BLOCKING.has(answer.decision)) {
        throw new Error(answer.reason || `Blocked by watchdog (${answer.decision})`)
      }
      if (answer.decision !== "allow") {
        throw new Error(`watchdog answered an unknown decision ${JSON.stringify(answer.decision)}` +
                        "; the call was blocked to be safe.")
      }
      if (isObject(answer.updated_args)) {
        if (isObject(args)) Object.assign(args, answer.updated_args)
        else log(`cannot rewrite this ${event.tool} call: OpenCode gave no arguments object`)
      }
      const context = strings(answer.context)
      if (context.length && input?.callID) {
        owed.set(input.callID, context)
        if (owed.size > MAX_PENDING) owed.delete(owed.keys().next().value)
      }
    },

    "tool.execute.after": async (input, output) => {
      let lines = owed.get(input?.callID) ?? []
      owed.delete(input?.callID)
      const event = baseEvent("PostToolUse", input, cwd, input?.args)
      event.result = resultOf(output)
      const { answer, problem } = await decide(event, cwd)
      if (problem) {
        log(`could not check the result of this ${event.tool} call (${problem})`)
      } else {
        if (typeof answer.message === "string" && answer.message) log(answer.message)
        if (answer.decision !== "allow" && typeof answer.reason === "string") {
          lines = lines.concat(answer.reason)
        }
        lines = lines.concat(strings(answer.context))
      }
      if (lines.length && output && typeof output.output === "string") {
        output.output += `\n\n${lines.map((line) => `${TAG} ${line}`).join("\n")}`
      }
    },
  }
}
