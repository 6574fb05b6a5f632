"""Stand-in reference `train.py` files for the patcher tests.

Written here from the documented anchors (`shared/docs/train-py-anchors.md`) and the documented
behaviour (dry run prints 'Training options:' and the options JSON); they are not reference code.
"""
import textwrap

ADA_TRAIN_PY = textwrap.dedent('''\
    """Stand-in for a stylegan2-ada-pytorch train.py: same anchors, same dry-run behaviour."""
    import json
    import os

    import click

    import dnnlib


    class UserError(Exception):
        pass


    def setup_training_loop_kwargs(data=None, gamma=None, resume=None, workers=None):
        args = dnnlib.EasyDict()
        if data is None or not os.path.exists(data):
            raise UserError('--data must point to an existing dataset')
        args.training_set_kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=data)
        spec = dnnlib.EasyDict(gamma=10.0 if gamma is None else gamma)
        args.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=spec.gamma)
        desc = os.path.splitext(os.path.basename(data))[0]
        if resume is not None:
            args.resume_pkl = resume
            desc += '-resumecustom'
        if workers is not None:
            args.data_loader_kwargs = dnnlib.EasyDict(num_workers=workers)
        return desc, args


    @click.command()
    @click.pass_context
    @click.option('--outdir', help='Where to save the results', required=True, metavar='DIR')
    @click.option('-n', '--dry-run', help='Print training options and exit', is_flag=True)
    @click.option('--data', help='Training data', metavar='PATH')
    @click.option('--gamma', help='R1 weight', type=float)
    @click.option('--resume', help='Resume training', metavar='PKL')
    @click.option('--workers', help='Override number of DataLoader workers', type=int, metavar='INT')

    def main(ctx, outdir, dry_run, **config_kwargs):
        try:
            run_desc, args = setup_training_loop_kwargs(**config_kwargs)
        except UserError as err:
            ctx.fail(err)
        args.run_dir = os.path.join(outdir, f'00000-{run_desc}')
        if dry_run:
            print('Training options:')
            print(json.dumps(args, indent=2))
            return


    if __name__ == '__main__':
        main()
''')

SG3_TRAIN_PY = textwrap.dedent('''\
    """Stand-in for a stylegan3 train.py: same anchors, same dry-run behaviour."""
    import json
    import os

    import click

    import dnnlib


    def launch_training(c, desc, outdir, dry_run):
        c.run_dir = os.path.join(outdir, f'00000-{desc}')
        if dry_run:
            print('Training options:')
            print(json.dumps(c, indent=2))
            return


    @click.command()
    @click.option('--outdir', help='Where to save the results', required=True)
    @click.option('--cfg', help='Base configuration', type=click.Choice(['stylegan3-t', 'stylegan3-r', 'stylegan2']), required=True)
    @click.option('--data', help='Training data', required=True)
    @click.option('--gamma', help='R1 regularization weight', type=float, required=True)
    @click.option('--resume', help='Resume from given network pickle', metavar='PKL')
    @click.option('-n','--dry-run', help='Print training options and exit',                         is_flag=True)

    def main(**kwargs):
        opts = dnnlib.EasyDict(kwargs)
        c = dnnlib.EasyDict()
        c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss')
        c.loss_kwargs.r1_gamma = opts.gamma
        if opts.resume is not None:
            c.resume_pkl = opts.resume
        desc = f'{opts.cfg:s}-{os.path.basename(opts.data)}'
        launch_training(c=c, desc=desc, outdir=opts.outdir, dry_run=opts.dry_run)


    if __name__ == '__main__':
        main()
''')
