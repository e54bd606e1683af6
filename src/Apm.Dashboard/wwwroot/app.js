// Entry module: starts the page's behaviour. Data from the server is read from data-* attributes and only ever
// written back with textContent or attributes, never as HTML (class names and main classes come from JVMs).
import { startFleet } from './fleet.js';
import { startJvm } from './jvm.js';

const fleet = document.querySelector('[data-apm-fleet]');
if (fleet) startFleet(fleet);
const jvm = document.querySelector('section[data-apm-jvm]');
if (jvm) startJvm(jvm);
