import { TEMPLATE_PLACEHOLDER, type EdgeSections, type ResponseFormatName, type TemplateConfig, type TemplateVersionConfig } from '@llmgw/config';
import { Message, ResponseFormat, ResponseFormatType, Role, type ChatRequest } from '@llmgw/proto/v1';
import { STICKY_BUCKETS, stickyBucket } from '@llmgw/sticky';
import { checkBytes, invalid } from './validate.js';

type Templates = EdgeSections['templates'];

const MAX_VARIABLES = 32;
const MAX_VARIABLE_BYTES = 4_096;
/** Caller-given names are echoed in errors only this long. */
const MAX_ECHOED_CHARS = 64;

const FORMAT_TYPES: Record<ResponseFormatName, ResponseFormatType> = {
  text: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT,
  json_object: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
  json_schema: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
};

const echo = (name: string): string => JSON.stringify(name.slice(0, MAX_ECHOED_CHARS));

/**
 * The version a request without one gets: the rollout arm its bucket falls in (arms take
 * consecutive ranges of buckets, by share), else the pinned version.
 */
export function rolloutVersion(t: TemplateConfig, bucket: number): string {
  let upTo = 0;
  for (const arm of t.rollout) {
    upTo += arm.share * STICKY_BUCKETS;
    if (bucket < upTo) return arm.version;
  }
  return t.pinned;
}

/**
 * Renders a templated request in place: the version's system prompt, its `{{variables}}`
 * replaced, goes before the request's own messages (a system message of the request stays, after
 * it); its defaults fill only fields the request leaves unset (route and model only when the
 * request names neither, nor `modelOrRoute`); prompt_version becomes "<template>@<version>".
 * The rollout is sticky per `stickyKey` (the end user, else the request id), salted with the
 * template's name so that it does not line up with a route's split, which uses the same key.
 */
export function applyTemplate(req: ChatRequest, templates: Templates, stickyKey: string, modelOrRoute: string): void {
  if (!req.template) {
    if (req.templateVersion || Object.keys(req.templateVariables).length > 0) throw invalid('template', 'template_version and template_variables need a template');
    return;
  }
  // Template and version names come from the caller: "constructor" must not find Object.prototype's.
  const t = Object.hasOwn(templates, req.template) ? templates[req.template] : undefined;
  if (!t) throw invalid('template', `unknown template ${echo(req.template)}`);
  if (req.promptVersion) throw invalid('prompt_version', 'a templated request gets "<template>@<version>"; leave it empty');
  const version = req.templateVersion || rolloutVersion(t, stickyBucket(`${req.template}\n${stickyKey}`));
  const v = Object.hasOwn(t.versions, version) ? t.versions[version] : undefined;
  if (!v) throw invalid('template_version', `template ${echo(req.template)} has no version ${echo(version)}`);
  checkVariables(v, req.templateVariables);
  const system = v.system.replace(TEMPLATE_PLACEHOLDER, (_match, name: string) => req.templateVariables[name] ?? '');
  req.messages.unshift(Message.fromPartial({ role: Role.ROLE_SYSTEM, content: system }));
  applyDefaults(req, v.defaults, modelOrRoute);
  req.promptVersion = `${req.template}@${version}`;
}

/** Every declared variable given, no other; the error names them (never their values). */
function checkVariables(v: TemplateVersionConfig, given: Record<string, string>): void {
  const names = Object.keys(given);
  if (names.length > MAX_VARIABLES) throw invalid('template_variables', `at most ${MAX_VARIABLES} variables`);
  const missing = v.variables.filter((n) => !Object.hasOwn(given, n));
  if (missing.length > 0) throw invalid('template_variables', `missing ${missing.join(', ')}`);
  const unknown = names.filter((n) => !v.variables.includes(n));
  if (unknown.length > 0) throw invalid('template_variables', `unknown ${unknown.map(echo).join(', ')} (the version declares ${v.variables.join(', ') || 'none'})`);
  for (const n of names) checkBytes(given[n] ?? '', `template_variables.${n}`, MAX_VARIABLE_BYTES);
}

function applyDefaults(req: ChatRequest, d: TemplateVersionConfig['defaults'], modelOrRoute: string): void {
  if (!req.route && !req.model && !modelOrRoute) {
    req.route = d.route ?? '';
    req.model = d.model ?? '';
  }
  req.temperature ??= d.temperature;
  req.maxTokens ??= d.max_tokens;
  if (req.stop.length === 0 && d.stop) req.stop = [...d.stop];
  const rf = d.response_format;
  if (rf && (req.responseFormat?.type ?? ResponseFormatType.RESPONSE_FORMAT_TYPE_UNSPECIFIED) === ResponseFormatType.RESPONSE_FORMAT_TYPE_UNSPECIFIED) {
    req.responseFormat = ResponseFormat.fromPartial({ type: FORMAT_TYPES[rf.type], jsonSchema: rf.json_schema ?? '', schemaName: rf.schema_name ?? '' });
  }
}

/**
 * Versions are immutable: a reload that changes the content of a version the edge holds is
 * refused (the watcher keeps the previous sections and logs the error). Versions may be added
 * and removed.
 */
export function refuseChangedVersions(current: Templates, next: EdgeSections): EdgeSections {
  const changed: string[] = [];
  for (const [name, t] of Object.entries(next.templates)) {
    const before = Object.hasOwn(current, name) ? current[name] : undefined;
    for (const [version, v] of Object.entries(t.versions)) {
      const old = before && Object.hasOwn(before.versions, version) ? before.versions[version] : undefined;
      if (old && JSON.stringify(old) !== JSON.stringify(v)) changed.push(`${name}@${version}`);
    }
  }
  if (changed.length > 0) throw new Error(`template versions are immutable: ${changed.join(', ')} changed; add a new version instead`);
  return next;
}
