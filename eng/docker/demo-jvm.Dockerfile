# The demo JVM of `apm up --demo` in its own container: steady allocation and a slowly growing cache.
FROM eclipse-temurin:17-jdk
WORKDIR /app
COPY src/Apm.Cli/demo/DemoService.java .
RUN javac -d /app DemoService.java
# -XX:+UsePerfData is HotSpot's default: the counters the collector reads appear in /tmp/hsperfdata_<user>/.
CMD ["java", "-Xmx256m", "-XX:+UsePerfData", "-cp", "/app", "DemoService"]
