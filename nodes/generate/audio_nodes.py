"""Sound nodes: the speech encoder features Wan 2.2 S2V and HuMo move a face by, their conditioning, Stable Audio
Open's and Stable Audio 3's text to sound, ACE-Step 1.5's, v1's and MiniMax Music 3's songs."""
from __future__ import annotations

from graph_engine import Input, NodeError, Param, node
from graph_engine.types import AUDIO, AUDIO_EMBEDS, AUDIO_ENCODER, CONDITIONING, IMAGE, LATENT, VAE, VIDEO
from nodes.common.models_dirs import locator, tokenizer_beside
from nodes.generate.audio_encoder import voice_preflight
from nodes.generate.nodes import PICTURE_SAMPLERS

# the sound models guide inside their own denoiser: the CFG++ samplers, which read the negative prompt's prediction
# apart, are generate.sample's; so is sa_solver, whose noise interval comes from the model's noise range, which
# generate.sample reads off the adapter
SOUND_SAMPLERS = tuple(s for s in PICTURE_SAMPLERS if not s.endswith("_cfg_pp") and not s.startswith("sa_solver"))

# The sound models' schedulers are declared here, where the registry reads them without importing torch (the
# engine's listing must not); nodes.generate.stable_audio and .ace_step check against these.
STABLE_AUDIO_SCHEDULERS = ("exponential", "karras", "simple")
ACE_SCHEDULERS = ("simple", "sgm_uniform", "beta")
STABLE_AUDIO3_SCHEDULERS = ACE_SCHEDULERS       # both flow models: ComfyUI's table schedules
MUSIC3_SCHEDULERS = ACE_SCHEDULERS


@node("load.audio_encoder", title="Load Audio Encoder", category="Models", device="gpu",
      outputs={"audio_encoder": AUDIO_ENCODER})
def load_audio_encoder(ctx, name: str = Param("", kind="path", locate=locator("audio_encoders"), required=True,
                                              help="file in audio_encoders/ (wav2vec2_large_english_fp16.safetensors; "
                                                   "HuMo: whisper_large_v3_fp16.safetensors)")):
    """A wav2vec2 (Wan 2.2 S2V) or whisper (HuMo) speech encoder from its own file (ComfyUI's AudioEncoderLoader),
    for encode.audio. Its kind and size (its layers) are read from the file."""
    from nodes.generate.audio_encoder import load
    from nodes.generate.model_manager import manager_for
    return {"audio_encoder": load(manager_for(ctx), name, ctx.device)}


@node("encode.audio", title="Encode Audio (speech)", category="Conditioning", device="gpu",
      made_from={"audio_embeds": "audio_encoder"})
def encode_audio(ctx, audio_encoder: AUDIO_ENCODER, audio: AUDIO) -> AUDIO_EMBEDS:
    """The speech encoder's features of a sound (ComfyUI's AudioEncoderEncode): every layer's, 50 a second,
    for Wan 2.2 S2V (wav2vec2) or HuMo (whisper: each 30 s heard in turn; ComfyUI hears the first 30 s only). The
    sound is mixed to mono and resampled to 16 kHz with ffmpeg's resampler (ComfyUI uses
    torchaudio's: the features differ by their filters' difference only; for wav2vec2 the level does not matter,
    the sound is normalised)."""
    from nodes.generate.audio_encoder import encode, samples
    feats = encode(audio_encoder.pipe, samples(audio))
    ctx.log(f"{feats['last'].shape[0]} feature frames ({feats['last'].shape[0] / feats['fps']:.2f} s of sound), "
            f"{feats['layers'].shape[0]} layers")
    return feats


@node("condition.s2v", title="Wan S2V Sound to Video", category="Conditioning", device="gpu",
      preflight=voice_preflight("wav2vec2", "Wan 2.2 S2V", "wav2vec2_large_english_fp16.safetensors", "audio_embeds"),
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_s2v(ctx, vae: VAE, positive: CONDITIONING,
                  negative: CONDITIONING = Input(optional=True),
                  audio_embeds: AUDIO_EMBEDS = Input(optional=True, help="encode.audio of the voice or song"),
                  reference: IMAGE = Input(optional=True, help="the person to bring to life (the video's look)"),
                  control: VIDEO = Input(optional=True, help="a pose video for the body to follow"),
                  motion: VIDEO = Input(optional=True, help="frames to continue from (the last 73 are read)"),
                  previous: LATENT = Input(optional=True, help="the clip so far, to continue it (ComfyUI's "
                                                               "WanSoundImageToVideoExtend): its size is kept"),
                  frames: int = Param(77, min=1, max=100000, help="this clip's length in frames (4n+1)"),
                  width: int = Param(640, min=16, max=8192, help="video width, a multiple of 16"),
                  height: int = Param(640, min=16, max=8192, help="video height, a multiple of 16")):
    """Wan 2.2 S2V's conditioning (ComfyUI's WanSoundImageToVideo; with `previous`, WanSoundImageToVideoExtend): the
    voice's features, one per video frame at 16 fps (from where `previous` ends), the reference image's latent,
    motion frames and a pose video's latent, and the empty latent to sample. The negative conditioning gets
    silence. Pictures are resized to cover the size and centre-cropped (ComfyUI: bilinear; here the VAE's
    processor)."""
    from nodes.generate.wan_s2v_cond import condition
    return condition(vae, positive, negative, frames, width, height, audio_embeds, reference, control, motion,
                     previous)


@node("condition.humo", title="HuMo Image to Video", category="Conditioning", device="gpu",
      preflight=voice_preflight("whisper", "HuMo", "whisper_large_v3_fp16.safetensors", "audio_embeds"), outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_humo(ctx, vae: VAE, positive: CONDITIONING,
                   negative: CONDITIONING = Input(optional=True),
                   audio_embeds: AUDIO_EMBEDS = Input(optional=True, help="encode.audio of the voice or song "
                                                                          "(the whisper encoder's)"),
                   reference: IMAGE = Input(optional=True, help="the person to bring to life (the video's look)"),
                   frames: int = Param(97, min=1, max=100000, help="the video's length in frames at 25 fps (4n+1)"),
                   width: int = Param(832, min=16, max=8192, help="video width, a multiple of 16"),
                   height: int = Param(480, min=16, max=8192, help="video height, a multiple of 16")):
    """HuMo's conditioning (ComfyUI's WanHuMoImageToVideo): the voice's whisper features, a window of 8 frames at
    25 fps for each latent frame, the reference image's latent, and the empty latent to sample. The negative
    conditioning gets silence and a zero reference, so guidance follows both. The picture is resized to cover the
    size and centre-cropped (ComfyUI: bilinear; here the VAE's processor)."""
    from nodes.generate.wan_humo_cond import condition
    return condition(vae, positive, negative, frames, width, height, audio_embeds, reference)


# Version 2: its step noise is drawn as ComfyUI draws it (stop 36): results cached before are keyed apart
@node("generate.stable_audio", title="Stable Audio (text to sound)", category="Sampling", device="gpu",
      outputs={"audio": AUDIO}, version=2, migrations={1: dict})
def generate_stable_audio(ctx, checkpoint: str = Param("stable-audio-open-1.0.safetensors", kind="path",
                                                       locate=locator("checkpoints"), required=True,
                                                       help="Stable Audio Open 1.0's checkpoint in checkpoints/"),
                          text_encoder: str = Param("t5-base.safetensors", kind="path",
                                                    locate=locator("text_encoders", companions=tokenizer_beside),
                                                    required=True, help="T5-base in text_encoders/, its tokenizer "
                                                                        "beside it (t5-base/)"),
                          prompt: str = Param("", kind="text", help="the sound: genre, instruments, mood, BPM"),
                          negative: str = Param("", kind="text", help="what to steer away from"),
                          seconds: float = Param(47.6, min=0.1, max=500.0, help="length (trained on up to 47 s)"),
                          seconds_start: float = Param(0.0, min=0.0, max=512.0,
                                                       help="where in a longer piece this part starts (ComfyUI's "
                                                            "ConditioningStableAudio)"),
                          seconds_total: float = Param(0.0, zero="auto", min=0.0, max=512.0,
                                                       help="the whole piece's length the model is told; auto = "
                                                            "this sound's whole seconds"),
                          steps: int = Param(50, min=1, max=1000, help="denoising steps (ComfyUI's template: 50)"),
                          cfg: float = Param(7.0, min=0.0, max=100.0, help="guidance; 1 = no negative pass"),
                          sampler: str = Param("dpmpp_2m", choices=SOUND_SAMPLERS,
                                               help="KSampler's sampler; ComfyUI's dpmpp_3m_sde runs as dpmpp_2m "
                                                    "(no SDE samplers here)"),
                          scheduler: str = Param("exponential", choices=STABLE_AUDIO_SCHEDULERS,
                                                 help="KSampler's scheduler: the noise levels the steps visit"),
                          seed: int = Param(0, min=0, max=2 ** 64 - 1, help="the noise's seed (KSampler's)")):
    """Stable Audio Open 1.0's sound for a prompt, from ComfyUI's files (its EmptyLatentAudio, CLIPTextEncode with
    T5-base, KSampler and VAEDecodeAudio in one node): 44.1 kHz stereo, `seconds` long, as loud as ComfyUI leaves it.
    Save it with io.save_audio, or lay it under a clip with io.set_audio."""
    from nodes.generate import stable_audio as sa
    from nodes.generate.model_manager import manager_for
    model = sa.load(manager_for(ctx), checkpoint, text_encoder, ctx.device)
    wave = sa.generate(model, prompt, negative, seconds, steps, cfg, sampler, scheduler, seed, ctx.progress,
                       seconds_start, seconds_total)
    ctx.log(f"{wave.shape[-1] / sa.RATE:.2f} s of sound, {wave.shape[0]} channels at {sa.RATE} Hz")
    return {"audio": sa.as_audio(wave)}


@node("generate.stable_audio3", title="Stable Audio 3 (text to music and sound)", category="Sampling", device="gpu",
      outputs={"audio": AUDIO})
def generate_stable_audio3(ctx, checkpoint: str = Param("stable_audio_3_medium.safetensors", kind="path",
                                                        locate=locator("checkpoints"), required=True,
                                                        help="Stable Audio 3's checkpoint in checkpoints/ (medium: "
                                                             "distilled, 8 lcm steps; medium_base: 50 steps, cfg 7)"),
                           text_encoder: str = Param("t5gemma_b_b_ul2.safetensors", kind="path",
                                                     locate=locator("text_encoders", companions=tokenizer_beside),
                                                     required=True,
                                                     help="T5Gemma in text_encoders/ (its tokenizer inside, as "
                                                          "ComfyUI's file has it, or beside it)"),
                           prompt: str = Param("", kind="text", help="the sound: genre, instruments, mood, BPM"),
                           negative: str = Param("", kind="text", help="what to steer away from (cfg above 1)"),
                           seconds: float = Param(60.0, min=0.1, max=384.0, help="length"),
                           steps: int = Param(8, min=1, max=1000, help="medium: 8; medium_base: 50"),
                           cfg: float = Param(1.0, min=0.0, max=100.0, help="guidance; 1 = no negative pass "
                                                                            "(medium); medium_base: 7"),
                           sampler: str = Param("lcm", choices=SOUND_SAMPLERS,
                                                help="KSampler's sampler; lcm re-noises after each step, as the "
                                                     "distilled model was trained to be sampled"),
                           scheduler: str = Param("simple", choices=STABLE_AUDIO3_SCHEDULERS,
                                                  help="KSampler's scheduler on the model's shift-2 flow levels"),
                           seed: int = Param(0, min=0, max=2 ** 64 - 1, help="the noise's seed (KSampler's)")):
    """Stable Audio 3's music or sound for a prompt, from ComfyUI's files (its EmptyLatentAudio, CLIPTextEncode with
    T5Gemma, KSampler and VAEDecodeAudio in one node): 44.1 kHz stereo, `seconds` long, as loud as ComfyUI leaves
    it. Save it with io.save_audio, or lay it under a clip with io.set_audio."""
    from nodes.generate import stable_audio3 as sa3
    from nodes.generate.model_manager import manager_for
    from nodes.generate.stable_audio import RATE, as_audio
    model = sa3.load(manager_for(ctx), checkpoint, text_encoder, ctx.device)
    wave = sa3.generate(model, prompt, negative, seconds, steps, cfg, sampler, scheduler, seed, ctx.progress)
    ctx.log(f"{wave.shape[-1] / RATE:.2f} s of sound, {wave.shape[0]} channels at {RATE} Hz")
    return {"audio": as_audio(wave)}


@node("generate.ace_step", title="ACE-Step 1.5 (song from text and lyrics)", category="Sampling", device="gpu",
      outputs={"audio": AUDIO})
def generate_ace_step(ctx, diffusion_model: str = Param("acestep_v1.5_turbo.safetensors", kind="path",
                                                        locate=locator("diffusion_models"),
                                                        help="ACE-Step 1.5's diffusion model in diffusion_models/ "
                                                             "(turbo, base, sft or an xl one)"),
                      text_encoder: str = Param("qwen_0.6b_ace15.safetensors", kind="path",
                                                locate=locator("text_encoders", companions=tokenizer_beside),
                                                help="Qwen3-0.6B in text_encoders/, its tokenizer beside it "
                                                     "(qwen_0.6b_ace15/) or ComfyUI's qwen25_tokenizer"),
                      lm: str = Param("qwen_1.7b_ace15.safetensors", kind="path", locate=locator("text_encoders"),
                                      help="the language model that writes the audio codes (qwen_1.7b_ace15 or "
                                           "qwen_4b_ace15); empty: none (generate_audio_codes off)"),
                      vae: str = Param("ace_1.5_vae.safetensors", kind="path", locate=locator("vae"),
                                       help="ACE-Step 1.5's VAE in vae/"),
                      checkpoint: str = Param("", kind="path", locate=locator("checkpoints", companions=tokenizer_beside),
                                              help="ComfyUI's all-in-one ace_step_1.5_*_aio.safetensors in "
                                                   "checkpoints/ (its Qwen3 tokenizer beside it); set, it is read in "
                                                   "place of the four files above"),
                      tags: str = Param("", kind="text", help="the song: genre, instruments, voice, mood"),
                      lyrics: str = Param("", kind="text", help="the words, with [verse] / [chorus] marks"),
                      seconds: float = Param(120.0, min=1.0, max=1000.0, help="length"),
                      duration: float = Param(0.0, zero="auto", min=0.0, max=2000.0,
                                              help="the length the model is told and the codes are drawn for "
                                                   "(TextEncodeAceStepAudio1.5's duration); auto = seconds"),
                      bpm: int = Param(120, min=10, max=300, help="tempo the model is told, beats a minute"),
                      timesignature: str = Param("4", choices=("2", "3", "4", "6"),
                                                 help="beats in a bar the model is told"),
                      language: str = Param("en", help="the lyrics' language code"),
                      keyscale: str = Param("C major", help="key and scale, e.g. E minor"),
                      steps: int = Param(8, min=1, max=1000, help="turbo: 8; base / sft: 50"),
                      cfg: float = Param(1.0, min=0.0, max=100.0, help="guidance against the model's null "
                                                                       "embedding; turbo: 1 (no second pass)"),
                      sampler: str = Param("euler", choices=SOUND_SAMPLERS,
                                           help="KSampler's sampler (the templates: euler)"),
                      scheduler: str = Param("simple", choices=ACE_SCHEDULERS,
                                             help="KSampler's scheduler (the templates: simple)"),
                      shift: float = Param(3.0, min=0.0, max=100.0, help="ModelSamplingAuraFlow's shift"),
                      seed: int = Param(0, kind="seed", help="the noise's seed (KSampler's)"),
                      generate_audio_codes: bool = Param(True, help="let the language model write the song's "
                                                                    "codes first (5 a second)"),
                      lm_seed: int = Param(0, min=0, max=2 ** 64 - 1, help="the codes' seed"),
                      lm_cfg: float = Param(2.0, min=0.0, max=100.0, help="the language model's guidance "
                                                                          "against the prompt without metas"),
                      temperature: float = Param(0.85, min=0.0, max=2.0,
                                                 help="the codes' randomness: lower follows the prompt more closely"),
                      top_p: float = Param(0.9, min=0.0, max=1.0,
                                           help="draw codes only from the likeliest ones summing to this share"),
                      top_k: int = Param(0, min=0, max=100, zero="off",
                                         help="draw codes only from this many likeliest ones")):
    """ACE-Step 1.5's song for a caption and lyrics, from ComfyUI's split files or its all-in-one checkpoint (its
    EmptyAceStep1.5LatentAudio, TextEncodeAceStepAudio1.5, ConditioningZeroOut negative, ModelSamplingAuraFlow,
    KSampler and VAEDecodeAudio in one node): 48 kHz stereo, `seconds` long. With generate_audio_codes the language model first writes the song's plan
    as audio codes (as ComfyUI draws them for lm_seed). Save it with io.save_audio, or lay it under a clip with
    io.set_audio."""
    from nodes.generate import ace_step as ace
    from nodes.generate.model_manager import manager_for
    from nodes.generate.stable_audio import as_audio
    model = ace.load(manager_for(ctx), diffusion_model, text_encoder, lm if generate_audio_codes else "", vae,
                     ctx.device, checkpoint, generate_audio_codes)
    song = ace.Song(tags, lyrics, bpm, duration or seconds, timesignature, language, keyscale)
    codes = ace.audio_codes(model, song, ace.Drawing(lm_seed, lm_cfg, temperature, top_p, top_k), ctx.progress) \
        if generate_audio_codes else None
    wave = ace.generate(model, song, seconds, steps, cfg, sampler, scheduler, shift, seed, codes, ctx.progress)
    ctx.log(f"{wave.shape[-1] / ace.RATE:.2f} s of song, {len(codes or ())} audio codes")
    return {"audio": as_audio(wave, ace.RATE)}


@node("generate.ace_step1", title="ACE-Step v1 (song from tags and lyrics)", category="Sampling", device="gpu",
      outputs={"audio": AUDIO})
def generate_ace_step1(ctx, checkpoint: str = Param("ace_step_v1_3.5b.safetensors", kind="path",
                                                    locate=locator("checkpoints"), required=True,
                                                    help="ComfyUI's ace_step_v1_3.5b.safetensors in checkpoints/, "
                                                         "ComfyUI's ace_lyrics_tokenizer/vocab.json beside it"),
                       tags: str = Param("", kind="text", help="the song: genre, instruments, voice, mood"),
                       lyrics: str = Param("", kind="text", help="the words (English), with [verse] / [chorus] "
                                                                 "marks; [instrumental] for none"),
                       lyrics_strength: float = Param(1.0, min=0.0, max=10.0, help="how strongly the lyrics steer"),
                       audio: AUDIO = Input(optional=True, help="a song to edit (ComfyUI's VAEEncodeAudio): its "
                                                                "length is the result's; set denoise below 1"),
                       seconds: float = Param(120.0, min=1.0, max=1000.0, help="length (without a song to edit)"),
                       steps: int = Param(50, min=1, max=1000, help="denoising steps (the templates: 50)"),
                       cfg: float = Param(5.0, min=0.0, max=100.0, help="guidance against the zeroed prompt and "
                                                                        "lyrics; 1 = no second pass"),
                       sampler: str = Param("euler", choices=PICTURE_SAMPLERS, help="KSampler's sampler"),
                       scheduler: str = Param("simple", choices=ACE_SCHEDULERS, help="KSampler's scheduler"),
                       shift: float = Param(3.0, min=0.0, max=100.0,
                                            help="the flow's shift (the model's own: 3; the templates' "
                                                 "ModelSamplingSD3: 5)"),
                       tonemap: float = Param(0.0, min=0.0, max=100.0, zero="off",
                                              help="Reinhard tonemap of the guidance (LatentOperationTonemapReinhard "
                                                   "through LatentApplyOperationCFG; the templates: 1)"),
                       denoise: float = Param(1.0, min=0.01, max=1.0,
                                              help="how much of the song to edit is remade (the m2m template: 0.3)"),
                       seed: int = Param(0, kind="seed", help="the noise's seed (KSampler's)")):
    """ACE-Step v1's song for tags and lyrics from ComfyUI's all-in-one checkpoint (its EmptyAceStepLatentAudio or
    VAEEncodeAudio, TextEncodeAceStepAudio, ConditioningZeroOut negative, ModelSamplingSD3, LatentApplyOperationCFG
    with LatentOperationTonemapReinhard, KSampler and VAEDecodeAudio in one node): 44.1 kHz stereo. Given a song,
    it is re-sung from `denoise`. Save it with io.save_audio, or lay it under a clip with io.set_audio."""
    from nodes.generate import ace_step1 as ace
    from nodes.generate.model_manager import manager_for
    from nodes.generate.stable_audio import as_audio
    model = ace.load(manager_for(ctx), checkpoint, ctx.device)
    if audio is None and denoise < 1.0:
        raise NodeError(f"denoise={denoise:g} remakes part of a song, and none is given: connect audio (the song "
                        "to edit) or set denoise to 1")
    source = ace.encode_song(model, audio) if audio is not None else None
    wave = ace.generate(model, ace.Song(tags, lyrics, lyrics_strength), seconds, steps, cfg, sampler, scheduler,
                        shift, seed, tonemap, source, denoise, ctx.progress)
    ctx.log(f"{wave.shape[-1] / ace.RATE:.2f} s of song")
    return {"audio": as_audio(wave, ace.RATE)}


@node("generate.minimax_music3", title="MiniMax Music 3 (song from caption and lyrics)", category="Sampling",
      device="gpu", outputs={"audio": AUDIO})
def generate_minimax_music3(ctx, diffusion_model: str = Param("minimax_music3_dit_fp16.safetensors", kind="path",
                                                              locate=locator("diffusion_models"),
                                                              help="MiniMax Music 3's DiT in diffusion_models/ "
                                                                   "(fp16 or int8_convrot)"),
                            text_encoder: str = Param("minimax_music3_text_encoder_pruned_int8_convrot.safetensors",
                                                      kind="path", locate=locator("text_encoders"),
                                                      help="its language model in text_encoders/ (it carries its "
                                                           "tokenizer)"),
                            vae: str = Param("minimax_music3_dav.safetensors", kind="path", locate=locator("vae"),
                                             help="its DAV decoder in vae/"),
                            caption: str = Param("", kind="text", help="the song: style, mood, voice, arrangement"),
                            lyrics: str = Param("", kind="text", help="the words, with [verse] / [chorus] marks; "
                                                                      "only marks for an instrumental"),
                            max_duration: float = Param(120.0, min=0.04, max=360.0,
                                                        help="the longest song in seconds; the model may end it "
                                                             "earlier"),
                            lm_seed: int = Param(0, kind="seed", help="the language model's seed "
                                                                      "(MiniMaxMusic3TextEncode's)"),
                            cfg_scale: float = Param(1.5, min=0.0, max=100.0,
                                                     help="the language model's guidance against the blanked "
                                                          "prompt"),
                            top_k: int = Param(50, min=1, max=16384,
                                               help="semantic codes drawn from among the prompt's this many "
                                                    "likeliest"),
                            seconds: float = Param(0.0, zero="auto", min=0.0, max=360.0,
                                                   help="the latent's length; auto: as long as the language model's "
                                                        "song"),
                            steps: int = Param(30, min=1, max=1000, help="KSampler's steps"),
                            cfg: float = Param(1.7, min=0.0, max=100.0, help="guidance against no conditioning"),
                            sampler: str = Param("euler", choices=PICTURE_SAMPLERS, help="KSampler's sampler"),
                            scheduler: str = Param("simple", choices=MUSIC3_SCHEDULERS,
                                                   help="KSampler's scheduler"),
                            seed: int = Param(0, kind="seed", help="the noise's seed (KSampler's)"),
                            tile_size: int = Param(0, zero="off", min=0, max=8192,
                                                   help="decode in windows of this many latent frames "
                                                        "(VAEDecodeAudioTiled's), for long songs on small GPUs"),
                            overlap: int = Param(64, min=0, max=1024, help="latent frames tiles share")):
    """MiniMax Music 3's song for a caption and lyrics from ComfyUI's three files (its MiniMaxMusic3TextEncode,
    EmptyMiniMaxMusic3LatentAudio, ConditioningZeroOut negative, KSampler and VAEDecodeAudio or VAEDecodeAudioTiled in
    one node): the language model writes the song 25 frames a second until it ends it or max_duration, then the
    DiT renders those frames as 44.1 kHz stereo. Save it with io.save_audio, or lay it under a clip with
    io.set_audio."""
    from nodes.generate import minimax_music3 as mm3
    from nodes.generate.model_manager import manager_for
    from nodes.generate.stable_audio import as_audio
    model = mm3.load(manager_for(ctx), diffusion_model, text_encoder, vae, ctx.device)
    states = mm3.frame_states(model, caption, lyrics, lm_seed, mm3.frames_for(max_duration), cfg_scale, top_k,
                              ctx.progress)
    latent = mm3.generate(model, states, seconds, steps, cfg, sampler, scheduler, seed, ctx.progress)
    wave = mm3.decode(model, latent, tile_size, overlap)
    ctx.log(f"{states.shape[1]} frames written, {wave.shape[-1] / mm3.RATE:.2f} s of song")
    return {"audio": as_audio(wave, mm3.RATE)}
