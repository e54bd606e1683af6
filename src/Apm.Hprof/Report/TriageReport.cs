using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Apm.Hprof.Analysis;
using Apm.Hprof.Graph;

namespace Apm.Hprof.Report;

/// <summary>Writes a <see cref="TriageResult"/> as JSON and as one self-contained HTML page (no scripts, no external files).</summary>
public static class TriageReport
{
    /// <summary>JSON with findings[] (kind, title, retainedBytes, count, classes, path) then the tables; see docs/heap-triage.md.</summary>
    public static void WriteJson(TriageResult result, Stream output)
    {
        ArgumentNullException.ThrowIfNull(result);
        using var w = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteString("format", "apm-heap-triage/1");
        w.WriteStartObject("summary");
        var s = result.Summary;
        w.WriteString("file", s.File);
        w.WriteNumber("fileBytes", s.FileBytes);
        w.WriteNumber("idSize", s.IdSize);
        w.WriteString("dumpedAt", s.DumpedAt);
        w.WriteNumber("objects", s.Objects);
        w.WriteNumber("classes", s.Classes);
        w.WriteNumber("references", s.References);
        w.WriteNumber("gcRoots", s.Roots);
        w.WriteNumber("reachableObjects", s.ReachableObjects);
        w.WriteNumber("reachableBytes", s.ReachableBytes);
        w.WriteEndObject();
        w.WriteStartArray("findings");
        foreach (var f in result.Findings)
        {
            w.WriteStartObject();
            w.WriteString("kind", f.Kind);
            w.WriteString("title", f.Title);
            w.WriteNumber("retainedBytes", f.RetainedBytes);
            w.WriteNumber("count", f.Count);
            w.WriteStartArray("classes");
            foreach (var c in f.Classes) w.WriteStringValue(c);
            w.WriteEndArray();
            w.WriteStartArray("path");
            foreach (var p in f.Path)
            {
                w.WriteStartObject();
                w.WriteString("objectId", "0x" + p.ObjectId.ToString("X", CultureInfo.InvariantCulture));
                w.WriteString("class", p.ClassName);
                if (p.Field != null) w.WriteString("field", p.Field);
                if (p.Root != null) w.WriteString("root", p.Root);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartObject("details");
            foreach (var d in f.Details.GroupBy(d => d.Key))
            {
                if (d.Count() == 1) w.WriteString(d.Key, d.First().Value);
                else
                {
                    w.WriteStartArray(d.Key);
                    foreach (var v in d) w.WriteStringValue(v.Value);
                    w.WriteEndArray();
                }
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("classes");
        foreach (var c in result.Classes)
        {
            w.WriteStartObject();
            w.WriteString("name", c.Name);
            w.WriteNumber("count", c.Count);
            w.WriteNumber("shallowBytes", c.ShallowBytes);
            w.WriteNumber("retainedBytes", c.RetainedBytes);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteString("finalizerThread", result.FinalizerThread);
        w.WriteStartArray("finalizers");
        foreach (var f in result.Finalizers)
        {
            w.WriteStartObject();
            w.WriteString("referentClass", f.ReferentClass);
            w.WriteNumber("registered", f.Registered);
            w.WriteNumber("queued", f.Queued);
            w.WriteNumber("unreachable", f.Unreachable);
            w.WriteNumber("referentRetainedBytes", f.ReferentRetainedBytes);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("timers");
        foreach (var t in result.Timers)
        {
            w.WriteStartObject();
            w.WriteString("thread", t.ThreadName);
            w.WriteString("state", t.ThreadState);
            w.WriteNumber("tasks", t.Tasks);
            w.WriteNumber("cancelled", t.Cancelled);
            w.WriteNumber("earliestDueMillis", t.EarliestDueMillis);
            w.WriteNumber("latestDueMillis", t.LatestDueMillis);
            w.WriteNumber("queueRetainedBytes", t.QueueRetainedBytes);
            w.WriteStartObject("taskClasses");
            foreach (var kv in t.TaskClasses) w.WriteNumber(kv.Key, kv.Value);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("threads");
        foreach (var t in result.Threads)
        {
            w.WriteStartObject();
            w.WriteNumber("serial", t.Serial);
            w.WriteString("objectId", Hex(t.ObjectId));
            w.WriteString("name", t.Name);
            w.WriteString("state", t.State);
            w.WriteStartArray("frames");
            foreach (var f in t.Frames)
            {
                w.WriteStartObject();
                w.WriteString("class", f.ClassName);
                w.WriteString("method", f.Method);
                w.WriteString("sourceFile", f.SourceFile);
                w.WriteNumber("line", f.Line);
                WriteLocals(w, "locals", f.Locals);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            if (t.UnattributedLocals.Count > 0) WriteLocals(w, "unattributedLocals", t.UnattributedLocals);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("timings");
        foreach (var t in result.Timings)
        {
            w.WriteStartObject();
            w.WriteString("step", t.Step);
            w.WriteNumber("millis", (long)t.Elapsed.TotalMilliseconds);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteLocals(Utf8JsonWriter w, string name, IReadOnlyList<FrameLocal> locals)
    {
        w.WriteStartArray(name);
        foreach (var l in locals)
        {
            w.WriteStartObject();
            w.WriteString("objectId", Hex(l.ObjectId));
            w.WriteString("class", l.ClassName);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static string Hex(long id) => "0x" + id.ToString("X", CultureInfo.InvariantCulture);

    /// <summary>One HTML page: findings first, then classes, finalizers, timers, and the dominator tree top-down. Every JVM-derived string is encoded.</summary>
    public static string ToHtml(TriageResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var h = new StringBuilder();
        var s = result.Summary;
        h.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Heap triage: ").Append(E(s.File)).Append("</title><style>")
            .Append("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}")
            .Append("td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}td.n{text-align:right}.finding{border-left:4px solid #c33;padding:.5em 1em;margin:1em 0;background:#fff6f6}")
            .Append(".kind{font-family:monospace;color:#933}ol.path{font-family:monospace}details{margin-left:1.2em}summary{font-family:monospace}</style></head><body>");
        h.Append("<h1>Heap triage: ").Append(E(s.File)).Append("</h1><p>")
            .Append(Inv($"{s.FileBytes:N0} bytes, dumped {s.DumpedAt:u}; {s.Objects:N0} objects, {s.Classes:N0} classes, {s.References:N0} references, {s.Roots:N0} GC roots; reachable: {s.ReachableObjects:N0} objects, {s.ReachableBytes:N0} bytes."))
            .Append("</p><h2>Findings</h2>");
        if (result.Findings.Count == 0) h.Append("<p>No findings.</p>");
        foreach (var f in result.Findings)
        {
            h.Append("<div class=\"finding\"><div class=\"kind\">").Append(E(f.Kind)).Append("</div><h3>").Append(E(f.Title)).Append("</h3><p>")
                .Append(Inv($"Retained: {f.RetainedBytes:N0} bytes; count: {f.Count:N0}. Classes: ")).Append(E(string.Join(", ", f.Classes))).Append("</p>");
            if (f.Details.Count > 0)
            {
                h.Append("<table>");
                foreach (var d in f.Details) h.Append("<tr><th>").Append(E(d.Key)).Append("</th><td>").Append(E(d.Value)).Append("</td></tr>");
                h.Append("</table>");
            }

            if (f.Path.Count > 0)
            {
                h.Append("<p>Path from the GC root:</p><ol class=\"path\">");
                foreach (var p in f.Path)
                {
                    h.Append("<li>");
                    if (p.Field != null) h.Append('.').Append(E(p.Field)).Append(" → ");
                    h.Append(E(p.ClassName)).Append(Inv($" @0x{p.ObjectId:X}"));
                    if (p.Root != null) h.Append(" <em>(GC root: ").Append(E(p.Root)).Append(")</em>");
                    h.Append("</li>");
                }

                h.Append("</ol>");
            }

            h.Append("</div>");
        }

        h.Append("<h2>Classes by retained size</h2><table><tr><th>class</th><th>instances</th><th>shallow bytes</th><th>retained bytes</th></tr>");
        foreach (var c in result.Classes)
            h.Append("<tr><td>").Append(E(c.Name)).Append(Inv($"</td><td class=\"n\">{c.Count:N0}</td><td class=\"n\">{c.ShallowBytes:N0}</td><td class=\"n\">{c.RetainedBytes:N0}</td></tr>"));
        h.Append("</table><h2>Finalizers</h2><p>Finalizer thread: ").Append(E(result.FinalizerThread)).Append("</p>")
            .Append("<table><tr><th>referent class</th><th>registered (reachable)</th><th>queued</th><th>unreachable, not yet queued</th><th>referents retain bytes</th></tr>");
        foreach (var f in result.Finalizers)
            h.Append("<tr><td>").Append(E(f.ReferentClass)).Append(Inv($"</td><td class=\"n\">{f.Registered:N0}</td><td class=\"n\">{f.Queued:N0}</td><td class=\"n\">{f.Unreachable:N0}</td><td class=\"n\">{f.ReferentRetainedBytes:N0}</td></tr>"));
        h.Append("</table><h2>Timers</h2><table><tr><th>thread</th><th>state</th><th>tasks</th><th>cancelled</th><th>due from</th><th>due to</th><th>queue retains bytes</th><th>task classes</th></tr>");
        foreach (var t in result.Timers)
        {
            h.Append("<tr><td>").Append(E(t.ThreadName)).Append("</td><td>").Append(E(t.ThreadState))
                .Append(Inv($"</td><td class=\"n\">{t.Tasks:N0}</td><td class=\"n\">{t.Cancelled:N0}</td><td>{Due(t.EarliestDueMillis)}</td><td>{Due(t.LatestDueMillis)}</td><td class=\"n\">{t.QueueRetainedBytes:N0}</td><td>"))
                .Append(E(string.Join(", ", t.TaskClasses.Select(kv => Inv($"{kv.Key} ×{kv.Value}"))))).Append("</td></tr>");
        }

        h.Append("</table><h2>Threads</h2>");
        foreach (var t in result.Threads)
        {
            h.Append("<details><summary>").Append(E("\"" + t.Name + "\" " + t.State)).Append(Inv($" ({t.Frames.Count} frames)")).Append("</summary><ol class=\"path\" start=\"0\">");
            foreach (var f in t.Frames)
            {
                h.Append("<li>").Append(E(f.ClassName + "." + f.Method)).Append(" (").Append(E(FrameLocation(f))).Append(')');
                AppendLocals(h, f.Locals);
                h.Append("</li>");
            }

            h.Append("</ol>");
            if (t.UnattributedLocals.Count > 0)
            {
                h.Append("<p>Locals without a frame in the trace:</p>");
                AppendLocals(h, t.UnattributedLocals);
            }

            h.Append("</details>");
        }

        h.Append("<h2>Dominator tree</h2>");
        AppendTree(h, result.DominatorTree);
        h.Append("<h2>Timings</h2><table>");
        foreach (var t in result.Timings) h.Append("<tr><td>").Append(E(t.Step)).Append(Inv($"</td><td class=\"n\">{t.Elapsed.TotalMilliseconds:N0} ms</td></tr>"));
        h.Append("</table></body></html>");
        return h.ToString();
    }

    private static void AppendTree(StringBuilder h, IReadOnlyList<DominatorNode> nodes)
    {
        foreach (var n in nodes)
        {
            var label = E(n.ClassName) + Inv($" @0x{n.ObjectId:X}: retained {n.RetainedBytes:N0} bytes, shallow {n.ShallowBytes:N0}");
            if (n.Children.Count == 0)
            {
                h.Append("<div style=\"margin-left:1.2em;font-family:monospace\">").Append(label).Append("</div>");
                continue;
            }

            h.Append("<details><summary>").Append(label).Append("</summary>");
            AppendTree(h, n.Children);
            h.Append("</details>");
        }
    }

    private static void AppendLocals(StringBuilder h, IReadOnlyList<FrameLocal> locals)
    {
        if (locals.Count == 0) return;
        h.Append("<ul>");
        foreach (var l in locals) h.Append("<li>local: ").Append(E(l.ClassName)).Append(Inv($" @0x{l.ObjectId:X}")).Append("</li>");
        h.Append("</ul>");
    }

    /// <summary>Source position of a frame, with HotSpot's markers for frames without a line.</summary>
    private static string FrameLocation(ThreadFrame f) => f.Line switch
    {
        -3 => "Native Method",
        -2 => f.SourceFile + ", compiled",
        > 0 => f.SourceFile + ":" + f.Line.ToString(CultureInfo.InvariantCulture),
        _ => f.SourceFile.Length > 0 ? f.SourceFile : "Unknown Source",
    };

    private static string Due(long millis) => millis == 0 ? "" : DateTimeOffset.FromUnixTimeMilliseconds(millis).ToString("u", CultureInfo.InvariantCulture);

    private static string E(string s) => WebUtility.HtmlEncode(s);

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
