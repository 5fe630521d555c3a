/**
 * The console's stylesheet, served from the package at /assets/console.css (no CDN, nothing
 * fetched at run time). Kept as a module so that the build carries it into dist/ like the code.
 */
export const CONSOLE_CSS = `
:root { font-family: system-ui, sans-serif; color: #1d2733; background: #f6f7f9; }
body { margin: 0; }
header { background: #1d3557; color: #fff; padding: .6rem 1rem; }
nav { display: flex; gap: 1rem; align-items: center; padding: .5rem 1rem; background: #e4e9f0; }
nav a { color: #1d3557; text-decoration: none; }
nav a[aria-current] { font-weight: bold; text-decoration: underline; }
nav .logout { margin-left: auto; }
main { padding: 1rem; max-width: 80rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border-bottom: 1px solid #d8dee6; padding: .3rem .5rem; text-align: left; vertical-align: top; font-size: .9rem; }
td.num, th.num { text-align: right; }
code, pre { font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }
pre { background: #fff; border: 1px solid #d8dee6; padding: .5rem; white-space: pre-wrap; max-height: 30rem; overflow: auto; }
.notice { padding: .5rem; border-radius: 4px; }
.notice.ok { background: #e3f4e6; }
.notice.error { background: #fbe3e3; }
.verdict-spam { color: #b00020; font-weight: bold; }
.verdict-bulk { color: #a15c00; }
.verdict-ham { color: #1b7a33; }
.chart svg { width: 100%; max-width: 48rem; height: auto; background: #fff; border: 1px solid #d8dee6; }
.chart text { font-size: 9px; fill: #555; }
rect.v-spam { fill: #d62839; } rect.v-bulk { fill: #f4a259; } rect.v-unknown { fill: #9aa5b1; } rect.v-ham { fill: #5c946e; }
.legend span { margin-right: 1rem; }
.legend .k { display: inline-block; width: .8rem; height: .8rem; margin-right: .2rem; vertical-align: middle; }
.k.v-spam { background: #d62839; } .k.v-bulk { background: #f4a259; } .k.v-unknown { background: #9aa5b1; } .k.v-ham { background: #5c946e; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem; margin-bottom: 1rem; align-items: end; }
form.filters label { display: flex; flex-direction: column; font-size: .8rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: bold; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
`;
