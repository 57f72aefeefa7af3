import type { ContentAction, ContentDetector, ContentPolicyConfig } from '@llmgw/config';
import type { ToolCallDelta } from '@llmgw/proto/v1';

/*
 * The tenants' content policies: plain detectors (regular expressions, with the Luhn check for
 * cards and mod-97 for IBANs), no network. A policy is compiled once per config version.
 */

/** A detector finds candidate spans; `valid` confirms a candidate (a checksum), when it has one. */
interface Detector {
  pattern: RegExp;
  valid?: (match: string) => boolean;
}

const digitsOf = (s: string): string => s.replace(/\D/g, '');

/** The Luhn check of payment card numbers. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** The ISO 13616 check of an IBAN: country and check digits moved to the end, letters as numbers, mod 97 is 1. */
export function ibanValid(iban: string): boolean {
  const s = iban.replace(/\s/g, '').toUpperCase();
  const moved = s.slice(4) + s.slice(0, 4);
  let rest = 0;
  for (const ch of moved) {
    const code = ch.charCodeAt(0);
    const value = code >= 65 ? code - 55 : code - 48;
    rest = (value > 9 ? rest * 100 + value : rest * 10 + value) % 97;
  }
  return rest === 1;
}

/**
 * In order of precedence: a span found by one detector is not looked at by the next (a card
 * number is not also a phone number).
 */
const DETECTORS: Record<ContentDetector, Detector> = {
  secret: {
    pattern:
      /-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY-----)?|\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|sk_live_[A-Za-z0-9]{16,})/g,
  },
  card: { pattern: /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/g, valid: (m) => luhnValid(digitsOf(m)) },
  iban: { pattern: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/g, valid: ibanValid },
  national_id: {
    // US SSN (no 000, 666 or 9xx area, no 00 group, no 0000 serial) and UK National Insurance numbers.
    pattern: /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b|\b(?![DFIQUV])[A-CEGHJ-PR-TW-Z](?![DFIQUVO])[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g,
  },
  email: { pattern: /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b/g },
  phone: {
    // International (+ and country code) or grouped national numbers of 10 to 15 digits; dates
    // (2024-01-15, 15/01/2024) and plain digit runs are not phone numbers.
    pattern: /(?<![\w+/.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,8}){1,5}(?![\w/-]|\.\d)/g,
    valid: (m) => {
      const n = digitsOf(m).length;
      return n >= 10 && n <= 15 && (m.startsWith('+') || m.includes('(') || /^\d{3}[ .-]\d{3}[ .-]\d{4}$/.test(m) || /^0\d{2,4}[ .-]\d{3}/.test(m));
    },
  },
};

/** The placeholder's label of each detector: [EMAIL_1], [CARD_2]; a deny pattern's is its name, upper-case. */
const LABEL: Record<ContentDetector, string> = { secret: 'SECRET', card: 'CARD', iban: 'IBAN', national_id: 'NATIONAL_ID', email: 'EMAIL', phone: 'PHONE' };

const ORDER = Object.keys(DETECTORS) as ContentDetector[];

interface Rule {
  /** The detector, or the deny pattern's name. */
  name: string;
  label: string;
  action: ContentAction;
  detector: Detector;
}

export interface CompiledPolicy {
  name: string;
  request: boolean;
  response: boolean;
  blockStatus: ContentPolicyConfig['block_status'];
  rules: Rule[];
}

const compiled = new WeakMap<ContentPolicyConfig, CompiledPolicy>();

/** The policy, compiled once per config object (a reload brings new objects). */
export function compilePolicy(name: string, cfg: ContentPolicyConfig): CompiledPolicy {
  let policy = compiled.get(cfg);
  if (!policy) {
    const detectors = ORDER.flatMap((d): Rule[] => {
      const action = cfg.detectors[d];
      return action ? [{ name: d, label: LABEL[d], action, detector: DETECTORS[d] }] : [];
    });
    const deny = cfg.deny.map((p): Rule => ({ name: p.name, label: p.name.toUpperCase(), action: p.action, detector: { pattern: new RegExp(p.pattern, 'giu') } }));
    policy = { name, request: cfg.apply_to.includes('request'), response: cfg.apply_to.includes('response'), blockStatus: cfg.block_status, rules: [...detectors, ...deny] };
    compiled.set(cfg, policy);
  }
  return policy;
}

/** One detector's or deny pattern's matches in what was scanned, by the action taken. */
export interface Enforcement {
  rule: string;
  action: ContentAction;
  matches: number;
}

export interface ScanResult {
  /** The texts with `redact` matches replaced: what goes on (to the provider, or to the caller). */
  texts: string[];
  /** The texts with every match replaced: what a prompt log may show. */
  logTexts: string[];
  enforcements: Enforcement[];
  /** The first rule whose action is `block` and that matched. */
  blockedBy?: string;
}

interface Span {
  start: number;
  end: number;
  rule: Rule;
}

/** A text with its matches applied: what goes on, and what a log may show. */
interface Applied {
  sent: string;
  logged: string;
}

/** A text to scan that is JSON (a tool call's arguments): only its string values are scanned, so it stays valid JSON. */
export interface JsonText {
  json: string;
}

/** Every rule's matches in `text`, earlier rules first; a span overlapping an earlier one is left out. */
function findSpans(rules: readonly Rule[], text: string): Span[] {
  const spans: Span[] = [];
  for (const rule of rules) {
    const { pattern, valid } = rule.detector;
    pattern.lastIndex = 0;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      if (m[0].length === 0) {
        pattern.lastIndex++;
        continue;
      }
      const start = m.index;
      const end = start + m[0].length;
      if (valid && !valid(m[0])) continue;
      if (spans.some((s) => s.start < end && start < s.end)) continue;
      spans.push({ start, end, rule });
    }
  }
  return spans.sort((x, y) => x.start - y.start);
}

/**
 * Replaces matches with placeholders numbered per label across everything it is given (the same
 * value is the same placeholder within one request or one answer), counting each rule's matches.
 */
class Redactor {
  private readonly placeholders = new Map<string, string>();
  private readonly perLabel = new Map<string, number>();
  private readonly counts = new Map<Rule, number>();
  blockedBy: string | undefined;

  /** `text` with every match of `rules` applied. */
  scan(rules: readonly Rule[], text: string): Applied {
    return this.apply(text, findSpans(rules, text));
  }

  /** `text` with its `spans` (sorted, not overlapping) applied. */
  apply(text: string, spans: readonly Span[]): Applied {
    if (spans.length === 0) return { sent: text, logged: text };
    let sent = '';
    let logged = '';
    let at = 0;
    for (const s of spans) {
      this.counts.set(s.rule, (this.counts.get(s.rule) ?? 0) + 1);
      if (s.rule.action === 'block') this.blockedBy ??= s.rule.name;
      const before = text.slice(at, s.start);
      const value = text.slice(s.start, s.end);
      const p = this.placeholder(s.rule, value);
      sent += before + (s.rule.action === 'redact' ? p : value);
      logged += before + p;
      at = s.end;
    }
    return { sent: sent + text.slice(at), logged: logged + text.slice(at) };
  }

  result(texts: string[], logTexts: string[]): ScanResult {
    const enforcements = [...this.counts].map(([rule, matches]) => ({ rule: rule.name, action: rule.action, matches }));
    return this.blockedBy === undefined ? { texts, logTexts, enforcements } : { texts, logTexts, enforcements, blockedBy: this.blockedBy };
  }

  private placeholder(rule: Rule, value: string): string {
    const key = `${rule.label}\u0000${value}`;
    let p = this.placeholders.get(key);
    if (!p) {
      const n = (this.perLabel.get(rule.label) ?? 0) + 1;
      this.perLabel.set(rule.label, n);
      p = `[${rule.label}_${n}]`;
      this.placeholders.set(key, p);
    }
    return p;
  }
}

/** A JSON string literal, with the colon after it when it is an object's key. */
const JSON_STRING = /"(?:[^"\\]|\\.)*"(\s*:)?/g;

/**
 * `police` applied to each string value of a JSON text, each rewritten value re-serialised in its
 * place so that the text stays valid JSON and the rest of it (keys, numbers, spacing) is kept as it
 * was; a text that is not JSON is policed whole, as plain text.
 */
function policeJsonText(json: string, police: (text: string) => Applied): Applied {
  try {
    JSON.parse(json);
  } catch {
    return police(json);
  }
  let sent = '';
  let logged = '';
  let at = 0;
  // Valid JSON has no quote outside its string literals: matched from the start, they stay in step.
  for (const m of json.matchAll(JSON_STRING)) {
    if (m[1] !== undefined) continue;
    const value = JSON.parse(m[0]) as string;
    const out = police(value);
    const before = json.slice(at, m.index);
    sent += before + (out.sent === value ? m[0] : JSON.stringify(out.sent));
    logged += before + (out.logged === value ? m[0] : JSON.stringify(out.logged));
    at = m.index + m[0].length;
  }
  return { sent: sent + json.slice(at), logged: logged + json.slice(at) };
}

/** Scans a request's (or an answer's) texts, tool calls' arguments among them, with one placeholder numbering. */
export function scanTexts(policy: CompiledPolicy, texts: readonly (string | JsonText)[]): ScanResult {
  const redactor = new Redactor();
  const police = (text: string) => redactor.scan(policy.rules, text);
  const out: string[] = [];
  const logOut: string[] = [];
  for (const text of texts) {
    const { sent, logged } = typeof text === 'string' ? police(text) : policeJsonText(text.json, police);
    out.push(sent);
    logOut.push(logged);
  }
  return redactor.result(out, logOut);
}

/**
 * A streamed answer's text is held back this many characters at its tail, so that a match split
 * across chunks is seen whole before any of it goes to the caller.
 */
export const STREAM_HOLD_CHARS = 256;

/** A PEM private key's header whose END line has not arrived yet: everything from it is held. */
const OPEN_PEM = /^-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----(?![\s\S]*-----END )/;

/**
 * A response policy over a stream: each delta is let through once no match can still grow into
 * it (at most STREAM_HOLD_CHARS behind, longer for a PEM block until its END line), with the
 * answer's `redact` matches replaced. A blocking match stops it before any of the match is sent:
 * from then on `blockedBy` names the rule and nothing more is let through. Deny patterns longer than the hold are only seen whole when the stream ends.
 * Tool calls' arguments, which a delta may cut anywhere in their JSON, are held whole until the
 * stream ends and policed then, with the text's placeholders.
 */
export class StreamPolicer {
  private pending = '';
  private readonly redactor = new Redactor();
  private sent = '';
  private logged = '';
  /** The tool calls held so far, by index: their arguments assembled. */
  private readonly toolCalls = new Map<number, ToolCallDelta>();

  constructor(private readonly policy: CompiledPolicy) {}

  get blockedBy(): string | undefined {
    return this.redactor.blockedBy;
  }

  /** What of the stream so far may go to the caller now. */
  push(delta: string): string {
    this.pending += delta;
    return this.take(false);
  }

  /** The rest, at the stream's end. */
  end(): string {
    return this.take(true);
  }

  /** Holds tool calls' pieces until the stream ends. */
  holdToolCalls(deltas: readonly ToolCallDelta[]): void {
    for (const d of deltas) {
      const held = this.toolCalls.get(d.index);
      if (!held) this.toolCalls.set(d.index, { ...d });
      else {
        held.id ||= d.id;
        held.name ||= d.name;
        held.argumentsJsonDelta += d.argumentsJsonDelta;
      }
    }
  }

  /** At the stream's end, the held tool calls in index order, one delta each with its whole arguments policed. */
  endToolCalls(): ToolCallDelta[] {
    return [...this.toolCalls.values()]
      .sort((x, y) => x.index - y.index)
      .map((c) => ({ ...c, argumentsJsonDelta: policeJsonText(c.argumentsJsonDelta, (text) => this.redactor.scan(this.policy.rules, text)).sent }));
  }

  /** What was let through, what a log may show of it, and the enforcements. */
  result(): ScanResult {
    return this.redactor.result([this.sent], [this.logged]);
  }

  private take(final: boolean): string {
    const spans = findSpans(this.policy.rules, this.pending);
    let cut = final ? this.pending.length : Math.max(0, this.pending.length - STREAM_HOLD_CHARS);
    if (!final) for (const s of spans) if (OPEN_PEM.test(this.pending.slice(s.start, s.end))) cut = Math.min(cut, s.start);
    // Never inside a match: spans do not overlap, so moving to one's start lands inside no other.
    for (const s of spans) if (s.start < cut && cut < s.end) cut = s.start;
    const through = spans.filter((s) => s.end <= cut);
    const { sent, logged } = this.redactor.apply(this.pending.slice(0, cut), through);
    // Blocked: nothing more goes out, the match least of all.
    if (this.redactor.blockedBy !== undefined) return '';
    this.pending = this.pending.slice(cut);
    this.sent += sent;
    this.logged += logged;
    return sent;
  }
}

/** The policy of a tenant's request to the route it names: the route's override, else the tenant's, else none. */
export function policyFor(
  cfg: { content_policies: Record<string, ContentPolicyConfig>; tenants: Record<string, { content_policy?: string | undefined; route_policies: Record<string, string> }> },
  tenantId: string,
  route: string,
): CompiledPolicy | undefined {
  const tenant = Object.hasOwn(cfg.tenants, tenantId) ? cfg.tenants[tenantId] : undefined;
  if (!tenant) return undefined;
  // Route names come from callers: "constructor" must not find Object.prototype's.
  const name = Object.hasOwn(tenant.route_policies, route) ? tenant.route_policies[route] : tenant.content_policy;
  const policy = name !== undefined && Object.hasOwn(cfg.content_policies, name) ? cfg.content_policies[name] : undefined;
  return policy && name !== undefined ? compilePolicy(name, policy) : undefined;
}
