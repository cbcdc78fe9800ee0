// Adapter: the Express (JavaScript) http-cache-headers onto the scenario ops. Its exports
// are the TypeScript file's, so the TypeScript adapter drives it unchanged.

export { createAdapter } from "../http-cache-headers.js";
