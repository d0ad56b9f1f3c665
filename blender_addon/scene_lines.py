"""Generate for all sound strips: every line of dialogue in the scene's sequencer becomes an
animation at its strip's start, on the rig its channel or name prefix maps to.

Per-strip overrides come from the strip's custom properties: `lalia_emotion` ("happy=0.6;sad=0.2"),
`lalia_style`, `lalia_seed`, `lalia_transcript` (kept on the action for when transcripts are used).
Each line gets its own action and NLA track, named after the strip, playing only over its frames.
The whole run is one undo step; a line that fails is reported and the others still go on. In the
UI the run is modal, one line per timer tick, with one progress bar for the scene; Esc stops it
between two lines and keeps the lines already generated (`StripRun`).
"""
from __future__ import annotations

import bpy
from bpy.props import IntProperty, PointerProperty, StringProperty

from . import engine
from .rig import apply_motion, find_armature, guess_head_bone, sequencer_strips, strip_start


class LaliaStripTarget(bpy.types.PropertyGroup):
    match: StringProperty(name="Channel or prefix",
                          description="A sequencer channel number (e.g. 2), or the start of the strips' names "
                                      "(e.g. ANNA_)")
    target: PointerProperty(name="Face", type=bpy.types.Object,
                            description="The face mesh these strips animate")


def target_for(strip, rows, fallback):
    """The face a strip animates: the first row whose channel or prefix it matches, else `fallback`."""
    for row in rows:
        m = row.match.strip()
        if row.target is not None and m and (m == str(strip.channel) or (not m.isdigit() and strip.name.startswith(m))):
            return row.target
    return fallback


def strip_transcript(strip, from_name: bool) -> str | None:
    """A sound strip's dialogue text: its `lalia_transcript` property, else (when the panel says
    so) its name."""
    if "lalia_transcript" in strip:
        return str(strip["lalia_transcript"])
    return strip.name if from_name else None


def strip_options(base, strip, from_name: bool = False):
    """The panel's options with the strip's own overrides; the panel's dialogue text is one
    line's, so a strip has only its own."""
    changes = {"transcript": strip_transcript(strip, from_name)}
    if "lalia_emotion" in strip:
        from .model_core.inference.options import parse_emotion
        changes["emotion"] = parse_emotion(str(strip["lalia_emotion"])) or None
    if "lalia_style" in strip:
        changes["style"] = str(strip["lalia_style"])
    if "lalia_seed" in strip:
        changes["seed"] = int(strip["lalia_seed"])
    return base.replace(**changes)


class StripRun:
    """One run of Generate all sound strips, a line per `step()`, so the panel can show progress
    between lines and Esc can stop the run between two lines (never inside one).

    Strips and faces are looked up by name at every step (the user may edit the scene between
    steps); a strip or face that is gone fails its line. Cancelling keeps the lines already
    generated, each whole on its own track (the run is one undo step: Ctrl+Z removes them all),
    and leaves the strips not reached untouched. Nothing the user made is changed either way:
    each line adds its own actions and NLA track and mutes nothing."""

    def __init__(self, context):
        from .model_core.base.errors import LaliaError
        from .operators import _checkpoint_path, _style
        from .properties import generation_options
        scene = context.scene
        se = scene.sequence_editor
        strips = sorted((st for st in sequencer_strips(se, all_strips=True) if st.type == "SOUND"),
                        key=lambda st: (strip_start(st), st.channel)) if se else []
        if not strips:
            raise LaliaError("The scene has no sound strips to generate from")
        self.strips = [st.name for st in strips]
        active = context.active_object
        self.fallback = active.name if active is not None and active.type == "MESH" else ""
        self.base = generation_options(scene.lalia, _style(context))
        self.generator = engine.generator(_checkpoint_path(context))
        self.done: list[str] = []
        self.failed: list[str] = []
        self.warned: list[str] = []  # a strip's transcript left out, and why

    @property
    def total(self) -> int:
        return len(self.strips)

    @property
    def position(self) -> int:
        """Lines handled so far (generated or failed)."""
        return len(self.done) + len(self.failed)

    def step(self, context) -> bool:
        """Generate the next strip's line onto its face; True while lines remain."""
        from .model_core.base.errors import LaliaError
        name = self.strips[self.position]
        try:
            self.done.append(self._line(context, name))
        except LaliaError as e:
            self.failed.append(f"{name}: {e}")
        except ReferenceError:  # the strip or face was deleted while the run was under way
            self.failed.append(f"{name}: the strip or its face was removed during the run")
        return self.position < self.total

    def _line(self, context, name: str) -> str:
        from .model_core.base.errors import LaliaError
        from .operators import motion_for_rig
        from .properties import key_tolerances
        scene, s = context.scene, context.scene.lalia
        se = scene.sequence_editor
        st = sequencer_strips(se, all_strips=True).get(name) if se else None
        if st is None or st.type != "SOUND":
            raise LaliaError("the sound strip was removed during the run")
        obj = target_for(st, s.strip_targets, bpy.data.objects.get(self.fallback) if self.fallback else None)
        if obj is None:
            raise LaliaError(f"no face for channel {st.channel} (add a row to the strip table)")
        result = self.generator.generate(bpy.path.abspath(st.sound.filepath),
                                         strip_options(self.base, st, s.transcript_from_strip_name))
        self.warned += [f"{st.name}: {w}" for w in result.info.get("warnings", [])]
        arm = find_armature(obj)
        bone = (s.head_bone or guess_head_bone(arm)) if (arm is not None and s.animate_head) else ""
        made = apply_motion(scene, obj, motion_for_rig(result.motion, obj, arm), name=st.name, armature=arm,
                            head_bone=bone, placement="LINE", frame_start=int(round(strip_start(st))),
                            tolerances=key_tolerances(s))
        for key in ("shape_action", "bone_action"):
            action = bpy.data.actions.get(made.get(key) or "")
            if action is not None and "lalia_transcript" in st:
                action["lalia_transcript"] = str(st["lalia_transcript"])
        return f"{st.name} -> {obj.name}"

    def summary(self, cancelled: bool = False) -> str:
        text = f"{len(self.done)} of {self.total} strips generated" + \
            (f"; {len(self.failed)} failed" if self.failed else "")
        if cancelled:
            text = f"Cancelled after {self.position} of {self.total} strips: {text}; the lines generated stay " \
                   "(Ctrl+Z removes them all)"
        return text


class LALIA_OT_generate_strips(bpy.types.Operator):
    """Generate every sound strip of the scene onto the face its channel or name prefix maps to
    (Esc stops between two lines: the lines done stay, one undo step)"""
    bl_idname = "lalia.generate_strips"
    bl_label = "Generate all sound strips"
    bl_options = {"REGISTER", "UNDO"}

    _run = None
    _timer = None

    def _begin(self, context):
        from .model_core.base.errors import LaliaError
        from .operators import _error
        if problem := engine.runtime_problem():
            return _error(self, LaliaError(problem))
        try:
            self._run = StripRun(context)
        except LaliaError as e:
            return _error(self, e)
        return None

    def execute(self, context):  # background mode and scripts: every line, then the summary
        refused = self._begin(context)
        if refused:
            return refused
        wm = context.window_manager
        wm.progress_begin(0, self._run.total)
        try:
            while self._run.step(context):
                wm.progress_update(self._run.position)
        finally:
            wm.progress_end()
        return self._end(context, cancelled=False)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        refused = self._begin(context)
        if refused:
            return refused
        wm = context.window_manager
        wm.progress_begin(0, self._run.total)
        context.scene.lalia.running, context.scene.lalia.progress = True, 0.0
        self._show(context)
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            return self._end(context, cancelled=True)
        if event.type != "TIMER" or event.value == "RELEASE":
            return {"PASS_THROUGH"} if event.type != "ESC" else {"RUNNING_MODAL"}
        try:
            more = self._run.step(context)  # one line, then back to the event loop (redraw, Esc)
        except Exception as e:  # not a line's own problem: stop here, the lines done stay
            from .operators import _error
            _error(self, e)
            return self._end(context, cancelled=True)
        context.window_manager.progress_update(self._run.position)
        if not more:
            return self._end(context, cancelled=False)
        self._show(context)
        return {"RUNNING_MODAL"}

    def _show(self, context):
        """The panel's bar and the status bar: which line is next, and how to stop."""
        run, s = self._run, context.scene.lalia
        s.progress = run.position / run.total
        s.status = f"Strip {run.position + 1} of {run.total}: {run.strips[run.position]}"
        if context.workspace is not None:
            context.workspace.status_text_set(f"Lalia: generating strip {run.position + 1} of {run.total} "
                                              f"({run.strips[run.position]}); Esc cancels, the lines done stay")
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()

    def _end(self, context, cancelled: bool):
        wm, s, run = context.window_manager, context.scene.lalia, self._run
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            wm.progress_end()
            if context.workspace is not None:
                context.workspace.status_text_set(None)
        s.running = False
        s.status = run.summary(cancelled)
        for line in run.failed + run.warned:
            self.report({"WARNING"}, line)
        self.report({"WARNING"} if cancelled else {"INFO"}, s.status)
        # FINISHED with lines done: they are one undo step. Nothing done: nothing to undo
        return {"FINISHED"} if run.done else {"CANCELLED"}


class LALIA_OT_strip_target_add(bpy.types.Operator):
    """Add a row to the strip table: a channel or name prefix, and the face it animates"""
    bl_idname = "lalia.strip_target_add"
    bl_label = "Add row"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        row = context.scene.lalia.strip_targets.add()
        obj = context.active_object
        row.target = obj if obj is not None and obj.type == "MESH" else None
        return {"FINISHED"}


class LALIA_OT_strip_target_remove(bpy.types.Operator):
    """Remove this row of the strip table"""
    bl_idname = "lalia.strip_target_remove"
    bl_label = "Remove row"
    bl_options = {"REGISTER", "UNDO"}
    index: IntProperty(default=0)

    def execute(self, context):
        rows = context.scene.lalia.strip_targets
        if 0 <= self.index < len(rows):
            rows.remove(self.index)
        return {"FINISHED"}


def draw(layout, s):
    """The panel's box: the strip table and the button."""
    box = layout.box()
    box.label(text="All sound strips", icon="SEQUENCE")
    for i, row in enumerate(s.strip_targets):
        r = box.row(align=True)
        r.prop(row, "match", text="")
        r.prop(row, "target", text="")
        r.operator("lalia.strip_target_remove", text="", icon="X").index = i
    box.operator("lalia.strip_target_add", icon="ADD")
    box.prop(s, "transcript_from_strip_name")
    row = box.row()
    row.enabled = not s.running  # one run at a time
    row.operator("lalia.generate_strips", icon="PLAY")


_classes = (LALIA_OT_generate_strips, LALIA_OT_strip_target_add, LALIA_OT_strip_target_remove)

register, unregister = bpy.utils.register_classes_factory(_classes)  # unregisters in reverse order
