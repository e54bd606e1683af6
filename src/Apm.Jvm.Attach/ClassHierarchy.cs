namespace Apm.Jvm.Attach;

/// <summary>Parses <c>VM.class_hierarchy &lt;class&gt; -s</c> output (JDK 9+): the loaded subclasses of one class.</summary>
public static class ClassHierarchyParser
{
    /// <summary>The diagnostic command line that lists the loaded subclasses of <paramref name="className"/>.</summary>
    public static string SubclassesCommand(string className) => "VM.class_hierarchy " + className + " -s";

    /// <summary>
    /// The names of every direct and indirect subclass of <paramref name="className"/> in the output (not the
    /// class itself nor its superclasses), as a class histogram prints them. Empty when the JVM has not loaded
    /// the class (it then answers nothing). Throws <see cref="FormatException"/> naming the line on anything
    /// else. Linear in the input.
    /// </summary>
    /// <remarks>
    /// The JVM prints its superclasses first, then the class, then its subclasses indented by three characters
    /// per level: <c>java.lang.Object/null</c>, <c>|--java.util.TimerTask/null</c>,
    /// <c>|  |--Foo$1/0x00007f3b50130c20</c>. Each name ends with its class loader (<c>/null</c> for the bootstrap
    /// loader); a hidden class's own name also contains a slash, so only the last segment is removed.
    /// <c>-i</c> adds "implements ..." lines, which are skipped.
    /// </remarks>
    public static IReadOnlySet<string> ParseSubclasses(string text, string className)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentException.ThrowIfNullOrEmpty(className);
        var lines = text.Split('\n');
        var result = new HashSet<string>(StringComparer.Ordinal);
        var rootDepth = -1;
        for (var i = FinalizerInfoParser.SkipPreamble(lines); i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            // jcmd prints "Command executed successfully" for an empty answer (the class is not loaded).
            if (line.Trim().Length == 0 || line.Trim() == "Command executed successfully") continue;
            int depth;
            string entry;
            var branch = line.IndexOf("|--", StringComparison.Ordinal);
            if (branch >= 0)
            {
                if (branch % 3 != 0 || line[..branch].Any(c => c is not ('|' or ' ')))
                    throw FinalizerInfoParser.Bad(i, "expected '|  ' indentation before '|--'", line);
                depth = (branch / 3) + 1;
                entry = line[(branch + 3)..];
            }
            else if (line.TrimStart().StartsWith('|') || line.TrimStart().StartsWith("implements ", StringComparison.Ordinal))
            {
                continue; // "|  implements java.lang.Runnable/null (declared intf)" with -i
            }
            else
            {
                depth = 0;
                entry = line;
            }

            var slash = entry.LastIndexOf('/');
            if (slash <= 0 || entry.Contains(' ', StringComparison.Ordinal))
                throw FinalizerInfoParser.Bad(i, "expected '<class name>/<class loader>'", line);
            var name = entry[..slash];
            if (rootDepth >= 0 && depth > rootDepth)
            {
                result.Add(name);
            }
            else if (name == className)
            {
                rootDepth = depth;
            }
            else if (rootDepth >= 0)
            {
                // Back at or above the class's level: another class loader's tree or the end of this one.
                rootDepth = -1;
            }
        }

        return result;
    }
}
